-- Decides requests against every rule that applies to each, each request atomically: its rules are
-- all checked, and only when all admit is each one charged. Mirrors algorithms/*.ts exactly; the
-- memory store is the reference. Time comes from the Redis server (TIME), so gateway clocks cannot
-- skew decisions.
--
-- One call may carry several requests (a batch: every decision a gateway made in the same tick),
-- decided one after another, as separate calls would be. What a call costs beyond its requests'
-- own reads and writes (the call itself, TIME, the reply) is then paid once per batch. Each key is
-- read once, and a request's answer (remaining, reset) is worked out from what was read and written
-- rather than read again: inside a script, every redis.call has a cost of its own.
--
-- KEYS: every request's keys, request after request (on a Cluster a call carries one request, whose
--       keys share one hash slot).
-- ARGV[1]: algorithm: sliding_window | fixed_window | token_bucket
-- ARGV[2]: number of requests
-- then per request: its time ('' to use TIME, or a time in ms, for the shared decision tables of the
--       tests), its number of rules k, and k pairs: limit, window (ms).
-- Returns, request after request, rule after rule: retry_after_ms, remaining, reset_ms. A request is
-- admitted when each of its rules' retry_after_ms is 0; it must wait the largest of them. A request
-- that could not be decided (a key of the wrong type) has -1, the error, 0 for each of its rules, and
-- wrote nothing (keys are only written once all of a request's reads are done).

local call, ceil, floor, min, format = redis.call, math.ceil, math.floor, math.min, string.format

local algorithm = ARGV[1]
local requests = tonumber(ARGV[2])

-- Lossless for doubles: times are stored as text and read back exactly.
local function num(x)
  return format('%.17g', x)
end

local server_now
local out, n = {}, 0
-- Scratch shared by the requests: what pass 1 read of each rule, for pass 2.
local st = {}
local key_at, arg_at = 0, 3

local function decide(now, count)
  local longest = 0

  if algorithm == 'sliding_window' then
    -- Exact sliding window: a list of the times of the last `limit` admissions, oldest first.
    for i = 1, count do
      local key, limit, window = KEYS[key_at + i], tonumber(ARGV[arg_at + 2 * i - 2]), tonumber(ARGV[arg_at + 2 * i - 1])
      local size = call('LLEN', key)
      local oldest, newest = false, false
      if size > 0 then
        oldest = tonumber(call('LINDEX', key, 0))
        if size == 1 then newest = oldest else newest = tonumber(call('LINDEX', key, -1)) end
      end
      local wait = 0
      if size >= limit then
        wait = oldest + window - now
        if wait < 0 then wait = 0 end
      end
      local s = 4 * i
      st[s - 3], st[s - 2], st[s - 1], st[s] = size, oldest, newest, wait
      if wait > longest then longest = wait end
    end
    for i = 1, count do
      local key, limit, window = KEYS[key_at + i], tonumber(ARGV[arg_at + 2 * i - 2]), tonumber(ARGV[arg_at + 2 * i - 1])
      local s = 4 * i
      local size, oldest, newest = st[s - 3], st[s - 2], st[s - 1]
      if longest == 0 then
        -- Keep the list sorted even if the clock steps back.
        local time = now
        if size > 0 and newest > now then time = newest end
        size = call('RPUSH', key, num(time))
        if size > limit then
          call('LTRIM', key, size - limit, -1)
          size = limit
          oldest = tonumber(call('LINDEX', key, 0))
        elseif size == 1 then
          oldest = time
        end
        newest = time
        local ttl = ceil(time + window - now)
        if ttl < 1 then ttl = 1 end
        call('PEXPIRE', key, ttl)
      end
      -- How many recorded times are inside the window (later than now - W); the list is sorted.
      local edge, used = now - window, 0
      if size > 0 then
        if oldest > edge then
          used = size
        elseif newest > edge then
          local lo, hi = 1, size - 1
          while lo < hi do
            local mid = floor((lo + hi) / 2)
            if tonumber(call('LINDEX', key, mid)) <= edge then lo = mid + 1 else hi = mid end
          end
          used = size - lo
        end
      end
      local reset = 0
      if used > 0 then reset = ceil(newest + window - now) end
      out[n + 1], out[n + 2], out[n + 3] = ceil(st[s]), limit - used, reset
      n = n + 3
    end
  elseif algorithm == 'fixed_window' then
    -- Fixed window aligned to the epoch: a hash {s = window start, c = count}. The key's TTL is set
    -- when its window starts (it ends with the window); later charges in the window leave it alone.
    for i = 1, count do
      local limit, window = tonumber(ARGV[arg_at + 2 * i - 2]), tonumber(ARGV[arg_at + 2 * i - 1])
      local start = floor(now / window) * window
      local state = call('HMGET', KEYS[key_at + i], 's', 'c')
      local used = 0
      if state[1] and tonumber(state[1]) == start then used = tonumber(state[2]) end
      local wait = 0
      if used >= limit then wait = start + window - now end
      local s = 3 * i
      st[s - 2], st[s - 1], st[s] = start, used, wait
      if wait > longest then longest = wait end
    end
    for i = 1, count do
      local key, limit, window = KEYS[key_at + i], tonumber(ARGV[arg_at + 2 * i - 2]), tonumber(ARGV[arg_at + 2 * i - 1])
      local s = 3 * i
      local start, used = st[s - 2], st[s - 1]
      if longest == 0 then
        used = used + 1
        call('HSET', key, 's', num(start), 'c', used)
        if used == 1 then
          local ttl = ceil(start + window - now)
          if ttl < 1 then ttl = 1 end
          call('PEXPIRE', key, ttl)
        end
      end
      local reset = 0
      if used > 0 then reset = ceil(start + window - now) end
      out[n + 1], out[n + 2], out[n + 3] = ceil(st[s]), limit - used, reset
      n = n + 3
    end
  elseif algorithm == 'token_bucket' then
    -- GCRA: the theoretical arrival time (TAT) as one number, written with its TTL in one SET. The
    -- slack absorbs the rounding of fractional intervals added to epoch-sized times (see
    -- algorithms/token-bucket.ts).
    for i = 1, count do
      local limit, window = tonumber(ARGV[arg_at + 2 * i - 2]), tonumber(ARGV[arg_at + 2 * i - 1])
      local tat = tonumber(call('GET', KEYS[key_at + i]) or '')
      if tat == nil or tat < now then tat = now end
      local interval = window / limit
      local tolerance = 1e-6 + min(limit * 2 ^ -11, interval / 2)
      local wait = tat - now + interval - window
      if wait <= tolerance then wait = 0 else wait = ceil(wait - tolerance) end
      local s = 3 * i
      st[s - 2], st[s - 1], st[s] = tat, tolerance, wait
      if wait > longest then longest = wait end
    end
    for i = 1, count do
      local limit, window = tonumber(ARGV[arg_at + 2 * i - 2]), tonumber(ARGV[arg_at + 2 * i - 1])
      local s = 3 * i
      local tat, tolerance = st[s - 2], st[s - 1]
      local interval = window / limit
      if longest == 0 then
        tat = tat + interval
        local ttl = ceil(tat - now)
        if ttl < 1 then ttl = 1 end
        call('SET', KEYS[key_at + i], num(tat), 'PX', ttl)
      end
      local ahead = tat - now
      local remaining = floor((window - ahead + tolerance) / interval)
      if remaining < 0 then remaining = 0 end
      local reset = ceil(ahead - tolerance)
      if reset < 0 then reset = 0 end
      out[n + 1], out[n + 2], out[n + 3] = st[s], remaining, reset
      n = n + 3
    end
  else
    error('unknown algorithm ' .. tostring(algorithm))
  end
end

for _ = 1, requests do
  local now
  if ARGV[arg_at] == '' then
    if server_now == nil then
      local t = call('TIME')
      server_now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
    end
    now = server_now
  else
    now = tonumber(ARGV[arg_at])
  end
  local count = tonumber(ARGV[arg_at + 1])
  arg_at = arg_at + 2
  -- A request that fails (a key of the wrong type) answers an error of its own; the rest of the batch
  -- is decided as usual. Its triples become one marker: -1, the error, 0.
  local first = n
  local ok, err = pcall(decide, now, count)
  if not ok then
    if type(err) == 'table' then err = err.err end
    n = first
    for i = 1, count do
      out[n + 1], out[n + 2], out[n + 3] = -1, tostring(err), 0
      n = n + 3
    end
  end
  key_at = key_at + count
  arg_at = arg_at + 2 * count
end
return out
