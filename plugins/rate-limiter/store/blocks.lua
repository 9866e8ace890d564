-- Escalating blocks, for decide.lua (redis.ts puts this text between shared.lua and decide.lua). Mirrors
-- blocks/escalation.ts exactly; the memory store (blocks/memory.ts) is the reference. A subject (a
-- user, a tenant) refused while it is limited collects strikes; the refusal after `after` of them
-- starts a block one level above its current one, and while a block is in force the subject's requests
-- are refused before any of their rules is read: nothing is charged.
--
-- ARGV, after decide.lua's rule table: the number of block policies P, then per policy: after, decay
--   (ms), the number of levels L and the L durations (ms). When P > 0 each request's arguments end
--   with its number of blocks b, their policy numbers (1-based), and per rule its block (1..b, 0 =
--   none). KEYS: a request's b block keys follow its rule keys.
-- A block record is a hash {n = strikes, x = when they lapse, l = level, u = end of the last block},
--   times in ms, that expires once it says nothing (strikes lapsed, level decayed to 0).
-- Reply: when P > 0 each request's answer ends with 3 numbers per block: ms until it ends (0: not
--   blocked), its level, and 1 when this request started it. A request refused by a block in force
--   has status 1 instead of 0, and zeros for its rules (they were not read).

local block_after, block_decay, block_levels = {}, {}, {}

-- Reads the policy table from ARGV[at]; returns the next argument's index and the number of policies.
local function read_block_table(at)
  local count = tonumber(ARGV[at])
  at = at + 1
  for p = 1, count do
    block_after[p], block_decay[p] = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    local levels = {}
    for j = 1, tonumber(ARGV[at + 2]) do levels[j] = tonumber(ARGV[at + 2 + j]) end
    block_levels[p] = levels
    at = at + 3 + #levels
  end
  return at, count
end

-- The current request's blocks: policy, key, record (n, x, l, u), whether this request started it;
-- and each of its rules' block.
local b_count, b_policy, b_key, b_started = 0, {}, {}, {}
local b_n, b_x, b_l, b_u = {}, {}, {}, {}
local rule_block = {}

-- Reads a request's block arguments from ARGV[at] (it has `count` rules); returns the next index.
local function read_request_blocks(at, count)
  b_count = tonumber(ARGV[at])
  at = at + 1
  for j = 1, b_count do
    b_policy[j] = tonumber(ARGV[at])
    at = at + 1
  end
  for i = 1, count do
    rule_block[i] = tonumber(ARGV[at])
    at = at + 1
  end
  return at
end

-- Reads the request's block records (its block keys start after KEYS[last_rule_key]); true when one
-- of them is in force at `now`.
local function blocks_in_force(now, last_rule_key)
  local held = false
  for j = 1, b_count do
    local key = KEYS[last_rule_key + j]
    b_key[j], b_started[j] = key, 0
    local r = call('HMGET', key, 'n', 'x', 'l', 'u')
    b_n[j], b_x[j], b_l[j], b_u[j] = tonumber(r[1]) or 0, tonumber(r[2]) or 0, tonumber(r[3]) or 0, tonumber(r[4]) or 0
    if b_u[j] > now then held = true end
  end
  return held
end

-- Block j's level at `now`: its last block's, one less per decay span since that block ended.
local function block_level(j, now)
  local l, u = b_l[j], b_u[j]
  if l == 0 or now < u then return l end
  local level = l - floor((now - u) / block_decay[b_policy[j]])
  if level < 0 then level = 0 end
  return level
end

-- After decide(): each block whose rules refused the request counts a strike, or starts a block.
-- out[at + 4 (i - 1)] is rule i's retry_after, out[at + 4 (i - 1) + 3] its too_large.
local function blocks_strike(now, out, at, count)
  for j = 1, b_count do
    local wait = 0
    for i = 1, count do
      local o = at + 4 * (i - 1)
      -- A cost no wait would admit is not flooding: it is answered as too large.
      if rule_block[i] == j and out[o + 3] == 0 and out[o] > wait then wait = out[o] end
    end
    if wait > 0 then
      local p = b_policy[j]
      local strikes = 0
      if b_x[j] > now then strikes = b_n[j] end
      if strikes >= block_after[p] then
        local levels = block_levels[p]
        local level = min(block_level(j, now) + 1, #levels)
        b_n[j], b_x[j], b_l[j], b_u[j], b_started[j] = 0, 0, level, now + levels[level], 1
      else
        local x = 0
        if strikes > 0 then x = b_x[j] end
        if now + wait > x then x = now + wait end
        b_n[j], b_x[j] = strikes + 1, x
      end
      local ends = b_u[j] + b_l[j] * block_decay[p]
      if b_x[j] > ends then ends = b_x[j] end
      call('HSET', b_key[j], 'n', b_n[j], 'x', num(b_x[j]), 'l', b_l[j], 'u', num(b_u[j]))
      call('PEXPIRE', b_key[j], ttl_ms(ends, now))
    end
  end
end

-- Appends the request's block triples to out from out[n + 1] (zeros when `ok` is false: the request
-- failed); returns the new n.
local function blocks_reply(out, n, now, ok)
  for j = 1, b_count do
    local left, level, started = 0, 0, 0
    if ok then
      if b_u[j] > now then left = ceil(b_u[j] - now) end
      level, started = b_l[j], b_started[j]
    end
    out[n + 1], out[n + 2], out[n + 3] = left, level, started
    n = n + 3
  end
  return n
end
