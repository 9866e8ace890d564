-- Concurrency slots: each key is a sorted set of lease ids scored by when the lease expires (Redis
-- server time, ms), so a gateway that dies stops renewing and its slots free themselves. Time comes
-- from TIME, so gateway clocks cannot skew leases.
--
-- ARGV[1] is the operation:
--   acquire: KEYS = the request's keys; ARGV: id, lease ms, then one limit per key. Takes a slot on
--            every key or on none. Returns 0, or the (1-based) index of the first full key.
--   release: KEYS = a slot's keys; ARGV: id. Returns how many of its keys still held it.
--   renew:   KEYS = the keys of one or more slots, slot after slot; ARGV: lease ms, then per slot its
--            id and number of keys. A lease is only extended, never added again (a key reset, or a
--            lease that expired and was dropped, stays so). Returns per slot 1 if every key still
--            held it, else 0.
--   count:   KEYS[1]; returns how many unexpired leases it holds.
-- A key lives a little past its latest lease (and goes when its last lease is released).

local call = redis.call
local op = ARGV[1]
local MARGIN_MS = 1000

local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function keep(key)
  local last = call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  if last then call('PEXPIREAT', key, tonumber(last) + MARGIN_MS) end
end

if op == 'acquire' then
  local id, lease = ARGV[2], tonumber(ARGV[3])
  for i = 1, #KEYS do
    call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  end
  for i = 1, #KEYS do
    if call('ZCARD', KEYS[i]) >= tonumber(ARGV[3 + i]) then return i end
  end
  for i = 1, #KEYS do
    call('ZADD', KEYS[i], now + lease, id)
    keep(KEYS[i])
  end
  return 0
end

if op == 'release' then
  local removed = 0
  for i = 1, #KEYS do
    removed = removed + call('ZREM', KEYS[i], ARGV[2])
  end
  return removed
end

if op == 'renew' then
  local lease = tonumber(ARGV[2])
  local out, k, a = {}, 0, 3
  while a <= #ARGV do
    local id, n = ARGV[a], tonumber(ARGV[a + 1])
    local whole = 1
    for i = k + 1, k + n do
      local score = call('ZSCORE', KEYS[i], id)
      if score and tonumber(score) > now then
        call('ZADD', KEYS[i], now + lease, id)
        keep(KEYS[i])
      else
        whole = 0
      end
    end
    out[#out + 1] = whole
    k, a = k + n, a + 2
  end
  return out
end

if op == 'count' then
  return call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
end

return redis.error_reply('unknown operation ' .. tostring(op))
