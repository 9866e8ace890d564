-- What decide.lua and adjust.lua share, so that both read and write every key the same way. redis.ts
-- puts this text before each script's own: it runs as the start of that script's top level (its
-- locals count towards the chunk's 200), and a script's line numbers count from here.

local call, ceil, floor, min, format, rep = redis.call, math.ceil, math.floor, math.min, string.format, string.rep
local pack, unpack = struct.pack, struct.unpack

-- The server's time in ms (TIME): one clock for every gateway, so theirs cannot skew decisions.
local function server_time()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
end

-- Lossless for doubles: times are stored as text and read back exactly, and adjust.lua finds a time
-- decide.lua stored by that very text.
local function num(x)
  return format('%.17g', x)
end

-- The TTL (ms) of a key written at `now` whose state ends at `ends`: at least 1, as SET refuses a
-- PX below 1 and PEXPIRE would delete the key just written.
local function ttl_ms(ends, now)
  local ttl = ceil(ends - now)
  if ttl < 1 then ttl = 1 end
  return ttl
end

-- A tokens log holds one record per slot, oldest first: the slot's end (ms) and the tokens charged in
-- it, two big-endian doubles (exact for integers). At most one window of slots, so at most 65 records.
local RECORD = 16

-- One record: a slot's end and its tokens.
local function record(slot, tokens)
  return pack('>dd', slot, tokens)
end

-- The slot length: the smallest of 1, 2, 5, 10, 20, 50, ... ms that cuts the window into at most 64
-- slots (as slotMs in sliding-log.ts).
local function slot_ms(window)
  local least, decade = window / 64, 1
  while true do
    if decade >= least then return decade end
    if 2 * decade >= least then return 2 * decade end
    if 5 * decade >= least then return 5 * decade end
    decade = decade * 10
  end
end

-- The end of the slot a charge made at t is counted in.
local function slot_end(t, window)
  local slot = slot_ms(window)
  return ceil(t / slot) * slot
end

-- A tokens log as stored (value, '' when there is none) and as a flat array: slot ends at odd
-- indices, tokens at even ones; n = its length. One unpack reads every record.
local function read_log(key)
  local value = call('GET', key)
  if not value then return '', {}, 0 end
  local n = #value / RECORD * 2
  return value, { unpack('>' .. rep('d', n), value) }, n
end

-- Index of the first slot ending later than edge (n + 1 when there is none).
local function first_live(log, n, edge)
  local i = 1
  while i <= n and log[i] <= edge do i = i + 2 end
  return i
end

-- Writes a tokens log (its records as stored) whose newest slot ends at `newest`. Slots that have
-- left the window are dropped on every write; the key lives until its newest slot leaves the window.
local function write_log(key, value, newest, window, now)
  call('SET', key, value, 'PX', ttl_ms(newest + window, now))
end

-- Fixed window aligned to the epoch: a hash {s = window start, c = count}. The start of the window
-- of `now`, and what that window has counted (0 when the hash is of an earlier one, or none).
local function fixed_state(key, now, window)
  local start = floor(now / window) * window
  local state = call('HMGET', key, 's', 'c')
  local used = 0
  if state[1] and tonumber(state[1]) == start then used = tonumber(state[2]) end
  return start, used
end

-- Charges `cost` to such a hash, which counted `used` in the window [start, ends): the window's first
-- charge writes both fields and the key's TTL (it lives until the window ends); a later one adds to
-- the count alone (HINCRBY: neither the start, formatted, nor the TTL is written again).
local function fixed_charge(key, start, ends, used, cost, now)
  if used == 0 then
    call('HSET', key, 's', num(start), 'c', cost)
    call('PEXPIRE', key, ttl_ms(ends, now))
  else
    call('HINCRBY', key, 'c', cost)
  end
end

-- Token bucket (GCRA): the theoretical arrival time (TAT) as one number (nil when there is none),
-- written with its TTL in one SET; the key lives until the TAT, when the bucket is full again.
local function read_tat(key)
  return tonumber(call('GET', key) or '')
end

local function write_tat(key, tat, now)
  call('SET', key, num(tat), 'PX', ttl_ms(tat, now))
end
