"""The Lua script that gives one waiter its turn at a pool model's line in Redis, atomically."""

from __future__ import annotations

TAKE_TURN = """
-- One waiter's turn at a pool model's line, atomically (providers/slots.py does the same in process).
-- KEYS[1]: the line (sorted set: ticket -> arrival), KEYS[2]: what each waiter wants (hash: ticket ->
-- "1member" strict, "0member" or "0" not), KEYS[3..]: each member's leases (sorted set: lease -> expiry).
-- ARGV: ticket, now, lease expiry, lease id, tickets older than this are dropped, most waiting,
-- wanted ("1member" / "0member" / "0"), number of members n, n capacities (0: no limit), n member names
-- in the pool's order, n tiers (lower first: the cached prefix, for the `cache` strategy).
-- Returns {status, chosen index or 0, waiters ahead wanting the same member, in flight per member...}:
-- status 1 taken, 0 waiting, -1 line full.
local ticket, now = ARGV[1], tonumber(ARGV[2])
local n = tonumber(ARGV[8])
local counts, free, names, caps, tiers, used = {}, {}, {}, {}, {}, {}
for i = 1, n do
  redis.call('ZREMRANGEBYSCORE', KEYS[2 + i], '-inf', now)
  counts[i] = redis.call('ZCARD', KEYS[2 + i])
  caps[i] = tonumber(ARGV[8 + i])
  names[i] = ARGV[8 + n + i]
  tiers[i] = tonumber(ARGV[8 + 2 * n + i])
  used[i] = counts[i]
  if caps[i] == 0 then free[names[i]] = 1000000000 else free[names[i]] = math.max(caps[i] - counts[i], 0) end
end
-- The member with room a waiter that takes any member gets: best tier, then the least loaded (in
-- flight per slot; per request where the slots are unknown), then the pool's order.
local function pick()
  local best, best_tier, best_load = nil, 0, 0
  for j = 1, n do
    if free[names[j]] > 0 then
      local load = used[j]
      if caps[j] > 0 then load = used[j] / caps[j] end
      if best == nil or tiers[j] < best_tier or (tiers[j] == best_tier and load < best_load) then
        best, best_tier, best_load = j, tiers[j], load
      end
    end
  end
  return best
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
if #stale > 0 then
  redis.call('HDEL', KEYS[2], unpack(stale))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[5])
end
if not redis.call('ZSCORE', KEYS[1], ticket) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[6]) then
    return {-1, 0, 0, unpack(counts)}
  end
  redis.call('ZADD', KEYS[1], now, ticket)
end
redis.call('HSET', KEYS[2], ticket, ARGV[7])
redis.call('EXPIRE', KEYS[2], 86400)
local waiters = redis.call('ZRANGE', KEYS[1], 0, -1)
local wants = redis.call('HMGET', KEYS[2], unpack(waiters))
local chosen = nil
local mine = string.sub(ARGV[7], 2)
local ahead = 0
local served = {}
-- First, each waiter in arrival order takes the member it wants when that one has room.
for i, t in ipairs(waiters) do
  local want = wants[i] or '0'
  local member = string.sub(want, 2)
  if t ~= ticket and mine ~= '' and member == mine and not chosen then ahead = ahead + 1 end
  if t == ticket then mine = '' end
  if member ~= '' and (free[member] or 0) > 0 then
    free[member] = free[member] - 1
    for j = 1, n do
      if names[j] == member then used[j] = used[j] + 1 end
    end
    served[t] = true
    if t == ticket then chosen = member break end
  end
end
-- Then the waiters that take any member, in arrival order.
if not chosen then
  for i, t in ipairs(waiters) do
    local want = wants[i] or '0'
    if not served[t] and string.sub(want, 1, 1) ~= '1' then
      local j = pick()
      if not j then break end
      free[names[j]] = free[names[j]] - 1
      used[j] = used[j] + 1
      if t == ticket then chosen = names[j] break end
    end
  end
end
if not chosen then
  return {0, 0, ahead, unpack(counts)}
end
local index = 0
for i = 1, n do
  if names[i] == chosen then index = i end
end
redis.call('ZADD', KEYS[2 + index], ARGV[3], ARGV[4])
counts[index] = counts[index] + 1
redis.call('ZREM', KEYS[1], ticket)
redis.call('HDEL', KEYS[2], ticket)
return {1, index, ahead, unpack(counts)}
"""
