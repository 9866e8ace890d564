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
-- A rule counts requests (each charges 1) or tokens (each request charges its own cost). Only the
-- sliding window keeps them apart: requests in a list of admission times, tokens in a log of slots
-- (algorithms/sliding-log.ts), one string of fixed-width records (see read_log). A cost above the
-- rule's limit can never be admitted: it is refused with retry_after = the window and too_large = 1.
-- The key layouts and the helpers that read and write them are in shared.lua (run before this).
--
-- KEYS: every request's keys, request after request (on a Cluster a call carries one request, whose
--       keys share one hash slot).
-- ARGV[1]: algorithm: sliding_window | fixed_window | token_bucket
-- ARGV[2]: number of requests
-- ARGV[3]: '' to decide every request at the server's time (TIME, read once per call), or 'c' when
--       each request carries its own time in ms (for the shared decision tables of the tests)
-- ARGV[4]: number of distinct rules R, then R triples: limit, window (ms), unit ('r' requests | 't'
--       tokens). A batch's requests mostly share their rules, so each is sent once per call.
-- then the number of calendar windows C among those rules, and C quintuples: the rule's number, then
--       the boundaries (ms) of the periods around the gateway's time: the previous period's start, the
--       current period's start and end, the next period's end (see "Calendar windows" below). A
--       request's calendar rules come after its other rules.
-- then per request: its time (under 'c' only), its number of rules k, and per rule: the rule's
--       number in the table (1-based), followed, for a tokens rule, by the cost (a positive integer).
-- The calendar windows are followed by the block policies, and each request's arguments (and
-- answer) end with its blocks: see blocks.lua.
-- Returns the time the requests were decided (and charged) at, as a string so that it is exact
-- (adjust.lua needs it to find the charge again), or '' under 'c'; then, request after request, 0
-- and rule after rule: retry_after_ms, remaining, reset_ms, too_large (0 | 1). A request is
-- admitted when each of its rules' retry_after_ms is 0; it must wait the largest of them. A request
-- that could not be decided (a key of the wrong type) has -1 instead of its 0, then the error, then
-- zeros to its full length (1 + 4k), and wrote nothing (keys are only written once all of a
-- request's reads are done).

local algorithm = ARGV[1]
local requests = tonumber(ARGV[2])

-- Tokens of the slots ending later than edge, counted from the newest back.
local function used_after(log, n, edge)
  local used, i = 0, n - 1
  while i >= 1 and log[i] > edge do
    used = used + log[i + 1]
    i = i - 2
  end
  return used
end

-- The log charged `cost` at `now`: the slots still inside the window kept as stored, and the charge
-- added to the newest slot when it is the slot of now (or a later one: the clock stepped back), else
-- appended as a new slot. Returns the new value and the slot charged.
local function charged_log(value, log, size, now, window, cost)
  local from = first_live(log, size, now - window)
  local live = value:sub((from - 1) / 2 * RECORD + 1)
  local slot = slot_end(now, window)
  if size >= from and log[size - 1] >= slot then
    -- The last 8 bytes are the newest slot's tokens.
    return live:sub(1, -9) .. pack('>d', log[size] + cost), log[size - 1]
  end
  return live .. record(slot, cost), slot
end

local caller_time = ARGV[3] == 'c'
local server_now
if not caller_time then server_now = server_time() end

-- The rule table.
local limits, windows, is_tokens = {}, {}, {}
local arg_at = 5
for r = 1, tonumber(ARGV[4]) do
  limits[r], windows[r], is_tokens[r] = tonumber(ARGV[arg_at]), tonumber(ARGV[arg_at + 1]), ARGV[arg_at + 2] == 't'
  arg_at = arg_at + 3
end

-- The calendar windows among the rules: rule number -> the boundaries of its periods.
local calendar = {}
for _ = 1, tonumber(ARGV[arg_at]) do
  local a = arg_at + 1
  calendar[tonumber(ARGV[a])] = { tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]) }
  arg_at = arg_at + 5
end
arg_at = arg_at + 1
-- The block policies (blocks.lua).
local block_policies
arg_at, block_policies = read_block_table(arg_at)

local out, n = {}, 1
out[1] = ''
if server_now then out[1] = num(server_now) end
-- Scratch shared by the requests: what pass 1 read of each rule, for pass 2.
local st = {}
-- The current request's rules (limit, window, whether it counts tokens, cost), read from ARGV.
local r_limit, r_window, r_tokens, r_cost = {}, {}, {}, {}
-- The current request's calendar boundaries per rule (false for every other rule).
local r_periods = {}
local key_at = 0

-- Rule i's arguments: limit, window, whether it counts tokens, and its cost.
local function rule_args(i)
  return r_limit[i], r_window[i], r_tokens[i], r_cost[i]
end

-- Decides rules 1..count of the current request; `longest` is the longest wait already found (by
-- its calendar windows). Returns the longest wait: 0 when everything admitted and was charged.
local function decide(now, count, longest)
  -- Pass 1 reads every rule and finds its wait; st holds, per rule (stride 5): wait, too_large and
  -- up to three values the algorithm needs in pass 2.
  if algorithm == 'sliding_window' then
    for i = 1, count do
      local key = KEYS[key_at + i]
      local limit, window, tokens, cost = rule_args(i)
      local s = 5 * i
      local wait = 0
      if tokens then
        -- Tokens: the log, and the tokens it holds inside the window.
        local value, log, size = read_log(key)
        local edge = now - window
        local used = used_after(log, size, edge)
        local excess = used + cost - limit
        if excess > 0 then
          -- Wait until the oldest slots holding at least the excess have left the window.
          local freed, j = 0, first_live(log, size, edge)
          wait = window
          while j <= size do
            freed = freed + log[j + 1]
            if freed >= excess then
              wait = log[j] + window - now
              break
            end
            j = j + 2
          end
        end
        st[s - 2], st[s - 1], st[s] = value, log, used
      else
        -- Requests: a list of the times of the last `limit` admissions, oldest first.
        local size = call('LLEN', key)
        local oldest, newest = false, false
        if size > 0 then
          oldest = tonumber(call('LINDEX', key, 0))
          if size == 1 then newest = oldest else newest = tonumber(call('LINDEX', key, -1)) end
        end
        if size >= limit then
          wait = oldest + window - now
          if wait < 0 then wait = 0 end
        end
        st[s - 2], st[s - 1], st[s] = size, oldest, newest
      end
      local too_large = 0
      if cost > limit then wait, too_large = window, 1 end
      st[s - 4], st[s - 3] = wait, too_large
      if wait > longest then longest = wait end
    end
    for i = 1, count do
      local key = KEYS[key_at + i]
      local limit, window, tokens, cost = rule_args(i)
      local s = 5 * i
      local used, newest
      if tokens then
        local value, log
        value, log, used = st[s - 2], st[s - 1], st[s]
        local size = #value / RECORD * 2
        if size > 0 then newest = log[size - 1] end
        if longest == 0 then
          local charged, slot = charged_log(value, log, size, now, window, cost)
          write_log(key, charged, slot, window, now)
          used, newest = used + cost, slot
        end
      else
        local size, oldest
        size, oldest, newest = st[s - 2], st[s - 1], st[s]
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
          call('PEXPIRE', key, ttl_ms(time + window, now))
        end
        -- How many recorded times are inside the window (later than now - W); the list is sorted.
        local edge = now - window
        used = 0
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
      end
      local reset = 0
      if used > 0 then reset = ceil(newest + window - now) end
      local remaining = limit - used
      if remaining < 0 then remaining = 0 end
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = ceil(st[s - 4]), remaining, reset, st[s - 3]
      n = n + 4
    end
  elseif algorithm == 'fixed_window' then
    for i = 1, count do
      local limit, window, _, cost = rule_args(i)
      local start, used = fixed_state(KEYS[key_at + i], now, window)
      local wait, too_large = 0, 0
      if cost > limit then
        wait, too_large = window, 1
      elseif used + cost > limit then
        wait = start + window - now
      end
      local s = 5 * i
      st[s - 4], st[s - 3], st[s - 2], st[s - 1] = wait, too_large, start, used
      if wait > longest then longest = wait end
    end
    for i = 1, count do
      local key = KEYS[key_at + i]
      local limit, window, _, cost = rule_args(i)
      local s = 5 * i
      local start, used = st[s - 2], st[s - 1]
      if longest == 0 then
        fixed_charge(key, start, start + window, used, cost, now)
        used = used + cost
      end
      local reset = 0
      if used > 0 then reset = ceil(start + window - now) end
      local remaining = limit - used
      if remaining < 0 then remaining = 0 end
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = ceil(st[s - 4]), remaining, reset, st[s - 3]
      n = n + 4
    end
  elseif algorithm == 'token_bucket' then
    -- GCRA: each request (token) moves the TAT one emission interval. The slack absorbs the rounding
    -- of fractional intervals added to epoch-sized times (see algorithms/token-bucket.ts).
    for i = 1, count do
      local limit, window, _, cost = rule_args(i)
      local tat = read_tat(KEYS[key_at + i])
      if tat == nil or tat < now then tat = now end
      local interval = window / limit
      local tolerance = 1e-6 + min(limit * 2 ^ -11, interval / 2)
      local wait = tat - now + cost * interval - window
      if wait <= tolerance then wait = 0 else wait = ceil(wait - tolerance) end
      local too_large = 0
      if cost > limit then wait, too_large = window, 1 end
      local s = 5 * i
      st[s - 4], st[s - 3], st[s - 2], st[s - 1] = wait, too_large, tat, tolerance
      if wait > longest then longest = wait end
    end
    for i = 1, count do
      local limit, window, _, cost = rule_args(i)
      local s = 5 * i
      local tat, tolerance = st[s - 2], st[s - 1]
      local interval = window / limit
      if longest == 0 then
        tat = tat + cost * interval
        write_tat(KEYS[key_at + i], tat, now)
      end
      local ahead = tat - now
      local remaining = floor((window - ahead + tolerance) / interval)
      if remaining < 0 then remaining = 0 end
      local reset = ceil(ahead - tolerance)
      if reset < 0 then reset = 0 end
      out[n + 1], out[n + 2], out[n + 3], out[n + 4] = ceil(st[s - 4]), remaining, reset, st[s - 3]
      n = n + 4
    end
  else
    error('unknown algorithm ' .. tostring(algorithm))
  end
  return longest
end

-- Calendar windows: a count per calendar day or month in a time zone, whatever the algorithm (as
-- algorithms/calendar-window.ts). Lua knows no time zones, so the gateway sends the boundaries of
-- three periods around its own time, and the period is chosen here by the server's time: a gateway
-- whose clock is a little off still counts in the period Redis is in. A server time outside all
-- three (clocks a whole period apart) fails the request. The state is a hash {s = period start,
-- c = count}, as the fixed window's, living until its period ends.

-- The period (start, end) that `now` falls in, of the boundaries b.
local function calendar_period(b, now)
  for j = 1, 3 do
    if now >= b[j] and now < b[j + 1] then return b[j], b[j + 1] end
  end
  error('calendar window: the server time is outside the periods around the gateway time (clocks a period apart)')
end

-- Scratch of the calendar rules, per rule (stride 5): wait, too_large, period start and end, used.
local cst = {}

-- Pass 1 over rules first..last (the calendar ones): each one's wait; returns the longest.
local function calendar_check(now, first, last)
  local longest = 0
  for i = first, last do
    local limit, _, _, cost = rule_args(i)
    local start, ends = calendar_period(r_periods[i], now)
    local state = call('HMGET', KEYS[key_at + i], 's', 'c')
    local used = 0
    if state[1] and tonumber(state[1]) == start then used = tonumber(state[2]) end
    local wait, too_large = 0, 0
    if cost > limit then
      wait, too_large = ends - start, 1
    elseif used + cost > limit then
      wait = ends - now
    end
    local s = 5 * i
    cst[s - 4], cst[s - 3], cst[s - 2], cst[s - 1], cst[s] = wait, too_large, start, ends, used
    if wait > longest then longest = wait end
  end
  return longest
end

-- Pass 2: charges them when the request is `admitted`; their answers, after the other rules'.
local function calendar_settle(now, first, last, admitted)
  for i = first, last do
    local limit, _, _, cost = rule_args(i)
    local s = 5 * i
    local start, ends, used = cst[s - 2], cst[s - 1], cst[s]
    if admitted then
      fixed_charge(KEYS[key_at + i], start, ends, used, cost, now)
      used = used + cost
    end
    local reset = 0
    if used > 0 then reset = ceil(ends - now) end
    local remaining = limit - used
    if remaining < 0 then remaining = 0 end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = ceil(cst[s - 4]), remaining, reset, cst[s - 3]
    n = n + 4
  end
end

-- One request: its calendar windows checked first, then the other rules decided (and charged when
-- nothing refused), then the calendar windows charged likewise.
local function decide_request(now, count)
  local plain = count
  while plain > 0 and r_periods[plain] do plain = plain - 1 end
  if plain == count then
    decide(now, count, 0)
    return
  end
  local waited = calendar_check(now, plain + 1, count)
  calendar_settle(now, plain + 1, count, decide(now, plain, waited) == 0)
end

for _ = 1, requests do
  local now = server_now
  if caller_time then
    now = tonumber(ARGV[arg_at])
    arg_at = arg_at + 1
  end
  local count = tonumber(ARGV[arg_at])
  arg_at = arg_at + 1
  for i = 1, count do
    local r = tonumber(ARGV[arg_at])
    r_limit[i], r_window[i], r_tokens[i] = limits[r], windows[r], is_tokens[r]
    r_periods[i] = calendar[r] or false
    if is_tokens[r] then
      r_cost[i] = tonumber(ARGV[arg_at + 1])
      arg_at = arg_at + 2
    else
      r_cost[i] = 1
      arg_at = arg_at + 1
    end
  end
  if block_policies > 0 then arg_at = read_request_blocks(arg_at, count) end
  -- A request that fails (a key of the wrong type) answers an error of its own; the rest of the batch
  -- is decided as usual.
  local first = n
  out[n + 1] = 0
  n = n + 1
  -- Blocks (blocks.lua): a subject blocked now is refused with nothing read or charged; otherwise a
  -- refusal counts towards its next block.
  local ok, err, held = true, nil, false
  if block_policies > 0 then ok, held = pcall(blocks_in_force, now, key_at + count) end
  if not ok then
    err = held
  elseif held then
    out[first + 1] = 1
    for _ = 1, 4 * count do
      out[n + 1] = 0
      n = n + 1
    end
  else
    ok, err = pcall(decide_request, now, count)
    if ok and block_policies > 0 then ok, err = pcall(blocks_strike, now, out, first + 2, count) end
  end
  if not ok then
    if type(err) == 'table' then err = err.err end
    out[first + 1], out[first + 2] = -1, tostring(err)
    n = first + 2
    for _ = 3, 1 + 4 * count do
      out[n + 1] = 0
      n = n + 1
    end
  end
  if block_policies > 0 then n = blocks_reply(out, n, now, ok) end
  key_at = key_at + count + b_count
end
return out
