-- Decides one request against every rule that applies to it, atomically: each rule is checked, and
-- only when all admit is each one charged. Mirrors algorithms/*.ts exactly; the memory store is the
-- reference. Time comes from the Redis server (TIME), so gateway clocks cannot skew decisions.
--
-- KEYS: one per rule (all in one hash slot).
-- ARGV[1]: algorithm: sliding_window | fixed_window | token_bucket
-- ARGV[2]: '' to use TIME, or a time in ms (the shared decision tables of the tests)
-- ARGV[2 + 2i - 1], ARGV[2 + 2i]: limit and window (ms) of rule i
-- Returns: { allowed (1/0), retry_after_ms, then per rule: retry_after_ms, remaining, reset_ms }

local algorithm = ARGV[1]
local now
if ARGV[2] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
else
  now = tonumber(ARGV[2])
end

-- Lossless for doubles: times are stored as text and read back exactly.
local function num(x)
  return string.format('%.17g', x)
end

local function expire_at(key, at)
  local ttl = math.ceil(at - now)
  if ttl < 1 then ttl = 1 end
  redis.call('PEXPIRE', key, ttl)
end

-- Exact sliding window: a list of the times of the last `limit` admissions, oldest first.
local sliding = {}
function sliding.check(key, limit, window)
  if redis.call('LLEN', key) < limit then return 0 end
  local wait = tonumber(redis.call('LINDEX', key, 0)) + window - now
  if wait <= 0 then return 0 end
  return wait
end
function sliding.consume(key, limit, window)
  local time = now
  local newest = redis.call('LINDEX', key, -1)
  if newest then time = math.max(now, tonumber(newest)) end
  local size = redis.call('RPUSH', key, num(time))
  if size > limit then redis.call('LTRIM', key, size - limit, -1) end
  expire_at(key, time + window)
end
function sliding.standing(key, limit, window)
  local size = redis.call('LLEN', key)
  if size == 0 then return limit, 0 end
  local edge = now - window
  local lo, hi = 0, size
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if tonumber(redis.call('LINDEX', key, mid)) <= edge then lo = mid + 1 else hi = mid end
  end
  local used = size - lo
  if used == 0 then return limit, 0 end
  return limit - used, tonumber(redis.call('LINDEX', key, -1)) + window - now
end

-- Fixed window aligned to the epoch: a hash {s = window start, c = count}.
local fixed = {}
local function fixed_count(key, start)
  local state = redis.call('HMGET', key, 's', 'c')
  if state[1] and tonumber(state[1]) == start then return tonumber(state[2]) end
  return 0
end
function fixed.check(key, limit, window)
  local start = math.floor(now / window) * window
  if fixed_count(key, start) < limit then return 0 end
  return start + window - now
end
function fixed.consume(key, limit, window)
  local start = math.floor(now / window) * window
  local count = fixed_count(key, start) + 1
  redis.call('HSET', key, 's', num(start), 'c', count)
  expire_at(key, start + window)
end
function fixed.standing(key, limit, window)
  local start = math.floor(now / window) * window
  local count = fixed_count(key, start)
  if count == 0 then return limit, 0 end
  return limit - count, start + window - now
end

-- GCRA: the theoretical arrival time as one number. The slack absorbs the rounding of fractional
-- intervals added to epoch-sized times (see algorithms/token-bucket.ts).
local EPSILON = 1e-6
local TIME_RESOLUTION = 2 ^ -11
local gcra = {}
local function slack(limit, interval)
  return EPSILON + math.min(limit * TIME_RESOLUTION, interval / 2)
end
local function ahead_of(key)
  local tat = tonumber(redis.call('GET', key) or '')
  if tat == nil or tat < now then return 0 end
  return tat - now
end
function gcra.check(key, limit, window)
  local interval = window / limit
  local wait = ahead_of(key) + interval - window
  local tolerance = slack(limit, interval)
  if wait <= tolerance then return 0 end
  return math.ceil(wait - tolerance)
end
function gcra.consume(key, limit, window)
  local stored = tonumber(redis.call('GET', key) or '')
  local base = now
  if stored ~= nil and stored > now then base = stored end
  local tat = base + window / limit
  redis.call('SET', key, num(tat))
  expire_at(key, tat)
end
function gcra.standing(key, limit, window)
  local interval = window / limit
  local ahead = ahead_of(key)
  local tolerance = slack(limit, interval)
  local remaining = math.floor((window - ahead + tolerance) / interval)
  if remaining < 0 then remaining = 0 end
  local reset = math.ceil(ahead - tolerance)
  if reset < 0 then reset = 0 end
  return remaining, reset
end

local impl
if algorithm == 'sliding_window' then impl = sliding
elseif algorithm == 'fixed_window' then impl = fixed
elseif algorithm == 'token_bucket' then impl = gcra
else return redis.error_reply('unknown algorithm ' .. tostring(algorithm)) end

local count = #KEYS
local waits = {}
local longest = 0
for i = 1, count do
  local wait = impl.check(KEYS[i], tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i]))
  waits[i] = wait
  if wait > longest then longest = wait end
end
local allowed = longest == 0

local out = { allowed and 1 or 0, math.ceil(longest) }
for i = 1, count do
  local key, limit, window = KEYS[i], tonumber(ARGV[1 + 2 * i]), tonumber(ARGV[2 + 2 * i])
  if allowed then impl.consume(key, limit, window) end
  local remaining, reset = impl.standing(key, limit, window)
  out[#out + 1] = math.ceil(waits[i])
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(reset)
end
return out
