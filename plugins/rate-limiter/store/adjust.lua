-- Changes what one admitted request charged (see RateStore.adjust): each key's charge of `cost`, made
-- at the time decide.lua returned, counts as cost + delta from now on. A refund (delta = -cost) takes
-- the charge back as if it had never been made; a positive delta charges more, even beyond the limit
-- (the key goes into debt). A charge that has already left the key (window passed, key expired) is
-- not refunded; a positive delta is then charged now. Mirrors the algorithms' adjust() exactly; the
-- memory store is the reference. The key layouts and the helpers that read and write them are in
-- shared.lua (run before this), so they are decide.lua's own.
--
-- KEYS: the request's keys to adjust (they share a hash slot, so one call works on a Cluster too).
-- ARGV[1]: algorithm: sliding_window | fixed_window | token_bucket
-- ARGV[2]: now: '' to use TIME, or a time in ms (the tests' caller time)
-- ARGV[3]: the time the request was charged at, as decide.lua returned it
-- then per key: limit, window (ms), unit ('r' | 't'), cost, delta (an integer, not 0, >= -cost).
-- then, when some keys are calendar windows, their number C and C sextuples: the key's index (1-based),
--       the start of the period the charge was made in, and the boundaries of the periods around the
--       gateway's time (as decide.lua is given them).
-- Returns the number of keys it changed.

local concat = table.concat

local algorithm = ARGV[1]
local now
if ARGV[2] == '' then now = server_time() else now = tonumber(ARGV[2]) end
local at = tonumber(ARGV[3])

-- A time-keyed state lives until `ends` (ms); nothing is left to keep when that is now or past.
local function expire_at(key, ends)
  local ttl = ceil(ends - now)
  if ttl < 1 then
    call('DEL', key)
  else
    call('PEXPIRE', key, ttl)
  end
end

-- Index of the slot ending at `slot`, searched from the newest back to `from` (false when none).
local function slot_at(log, from, size, slot)
  local j = size - 1
  while j >= from and log[j] >= slot do
    if log[j] == slot then return j end
    j = j - 2
  end
  return false
end

-- Calendar windows (see decide.lua): a count per period, the period chosen by the server's time.
-- Key index -> the charge's period start, and the boundaries around the gateway's time.
local calendar = {}
do
  local c = 4 + 5 * #KEYS
  for _ = 1, tonumber(ARGV[c] or '0') do
    calendar[tonumber(ARGV[c + 1])] = {
      charged = tonumber(ARGV[c + 2]),
      bounds = { tonumber(ARGV[c + 3]), tonumber(ARGV[c + 4]), tonumber(ARGV[c + 5]), tonumber(ARGV[c + 6]) },
    }
    c = c + 6
  end
end

-- A calendar window's charge changed by delta; returns 1 when the key changed, else 0.
local function adjust_calendar(key, delta, periods)
  local start, ends
  for j = 1, 3 do
    local b = periods.bounds
    if now >= b[j] and now < b[j + 1] then start, ends = b[j], b[j + 1] end
  end
  if not start then error('calendar window: the server time is outside the periods around the gateway time (clocks a period apart)') end
  local state = call('HMGET', key, 's', 'c')
  local used = 0
  if state[1] and tonumber(state[1]) == start then used = tonumber(state[2]) end
  if delta > 0 then
    -- Charged to the current period, whichever period the charge itself fell in.
    call('HSET', key, 's', num(start), 'c', used + delta)
    if used == 0 then expire_at(key, ends) end
    return 1
  end
  -- A refund only counts while the charge's period is the current one.
  if used == 0 or periods.charged ~= start then return 0 end
  used = used + delta
  if used <= 0 then call('DEL', key) else call('HSET', key, 'c', used) end
  return 1
end

local changed = 0

for i = 1, #KEYS do
  local key = KEYS[i]
  local a = 4 + 5 * (i - 1)
  local limit, window, tokens = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), ARGV[a + 2] == 't'
  local cost, delta = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if not tokens then cost = 1 end
  if delta < -cost then delta = -cost end

  if delta == 0 then
    -- Nothing to change.
  elseif calendar[i] then
    changed = changed + adjust_calendar(key, delta, calendar[i])
  elseif algorithm == 'sliding_window' and tokens then
    -- The log: slots that have left the window are dropped; the slot the charge went into (the slot
    -- of its time) changes by delta, never below nothing, and goes when nothing is left in it.
    local _, log, size = read_log(key)
    local from = first_live(log, size, now - window)
    local found = slot_at(log, from, size, slot_end(at, window))
    if found then
      local left = log[found + 1] + delta
      if left > 0 then log[found + 1] = left else log[found], log[found + 1] = false, false end
    elseif delta > 0 then
      -- The slot has left the window (or the key expired): what was spent beyond it counts now, in
      -- the newest slot when that is the slot of now (or a later one: the clock stepped back).
      local slot = slot_end(now, window)
      if size >= from and log[size - 1] >= slot then
        log[size] = log[size] + delta
      else
        log[size + 1], log[size + 2] = slot, delta
        size = size + 2
      end
    end
    local parts, m, newest = {}, 0, false
    for k = from, size, 2 do
      if log[k] then
        m = m + 1
        parts[m] = record(log[k], log[k + 1])
        newest = log[k]
      end
    end
    if m == 0 then call('DEL', key) else write_log(key, concat(parts), newest, window, now) end
    changed = changed + 1
  elseif algorithm == 'sliding_window' then
    -- The list of the last `limit` admission times.
    if delta > 0 then
      -- Admitted after all: recorded now (the list keeps only the last `limit`).
      local size = call('LLEN', key)
      local time = now
      if size > 0 then
        local newest = tonumber(call('LINDEX', key, -1))
        if newest > now then time = newest end
      end
      for _ = 1, min(delta, limit) do size = call('RPUSH', key, num(time)) end
      if size > limit then call('LTRIM', key, size - limit, -1) end
      expire_at(key, time + window)
      changed = changed + 1
    elseif call('LREM', key, -1, num(at)) > 0 then
      -- The refunded time was still in the list (else later admissions pushed it out, and it no
      -- longer counts anyway); the key now lives until its newest remaining time leaves the window.
      local newest = call('LINDEX', key, -1)
      if newest then expire_at(key, tonumber(newest) + window) end
      changed = changed + 1
    end
  elseif algorithm == 'fixed_window' then
    local start, used = fixed_state(key, now, window)
    if delta > 0 then
      -- Charged to the current window, whichever window the charge itself fell in.
      call('HSET', key, 's', num(start), 'c', used + delta)
      if used == 0 then expire_at(key, start + window) end
      changed = changed + 1
    elseif used > 0 and floor(at / window) * window == start then
      -- A refund only counts while the charge's window is the current one.
      used = used + delta
      if used <= 0 then call('DEL', key) else call('HSET', key, 'c', used) end
      changed = changed + 1
    end
  elseif algorithm == 'token_bucket' then
    local interval = window / limit
    local tat = read_tat(key)
    if delta > 0 then
      if tat == nil or tat < now then tat = now end
      tat = tat + delta * interval
      write_tat(key, tat, now)
      changed = changed + 1
    elseif tat ~= nil and tat > now then
      -- A refund gives back what has not refilled already: the TAT moves back, never before now.
      tat = tat + delta * interval
      if tat > now then
        write_tat(key, tat, now)
      else
        call('DEL', key)
      end
      changed = changed + 1
    end
  else
    error('unknown algorithm ' .. tostring(algorithm))
  end
end
return changed
