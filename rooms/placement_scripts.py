"""The Lua scripts of rooms/placement_redis.py: choosing a node and holding a lesson, atomically.

Keys (under the store's prefix P; node ids match placement.NODE_ID_PATTERN,
so they go into key names as they are):

    P nodes                 set: ids of nodes that registered (pruned of dead ones on read)
    P node:<id>             string: NodeRecord JSON, expiring `stale_after` after its last
                            refresh (gone = the node is dead)
    P node:<id>:lessons     sorted set: lesson ids the node holds, score = lease end (ms,
                            Redis server time); counted by the score
    P lesson-node:<lesson>  string: the holding node's id, expiring with the lease

The scripts build the node keys from P and the ids (single Redis or Sentinel,
as the store: not Redis Cluster). Time is the Redis server's (TIME), one clock
for every node. A lesson whose holder's record is gone is free even before its
lease runs out.
"""

COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The holder of a lesson, if its node is alive.
local function live_holder(lesson_key, prefix)
  local holder = redis.call('GET', lesson_key)
  if holder and redis.call('EXISTS', prefix .. 'node:' .. holder) == 1 then
    return holder
  end
  return nil
end

local function hold(lesson_key, prefix, node, lesson, lease, now)
  local old = redis.call('GET', lesson_key)
  if old and old ~= node then
    redis.call('ZREM', prefix .. 'node:' .. old .. ':lessons', lesson)
  end
  redis.call('SET', lesson_key, node, 'PX', lease)
  local held = prefix .. 'node:' .. node .. ':lessons'
  redis.call('ZADD', held, now + lease, lesson)
  if redis.call('PTTL', held) < lease then
    redis.call('PEXPIRE', held, lease)
  end
end
"""

# KEYS: nodes set, node record.  ARGV: record JSON, ttl ms, node id
REGISTER = """
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[1], ARGV[3])
return 1
"""

# The least loaded live node that is neither draining nor full (rooms/placement.py's
# load_score and is_full, the same formula), unless a live node holds the lesson.
# KEYS: lesson key, nodes set.  ARGV: prefix, lesson id, lease ms.
# Returns {holder, 0} when it was held, {node, 1} when placed now, {} when no node can.
PLACE = (
    COMMON
    + """
local prefix = ARGV[1]
local holder = live_holder(KEYS[1], prefix)
if holder then
  return {holder, 0}
end
local now = now_ms()
local best, best_score = nil, nil
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local doc = redis.call('GET', prefix .. 'node:' .. id)
  if not doc then
    redis.call('SREM', KEYS[2], id)
  else
    local record = cjson.decode(doc)
    if not record.draining then
      local held = prefix .. 'node:' .. id .. ':lessons'
      redis.call('ZREMRANGEBYSCORE', held, '-inf', now)
      local lessons = redis.call('ZCARD', held)
      local load, limits = record.load, record.limits
      local cpu = load.cpu_share / limits.max_cpu
      local streams = load.streams / limits.max_streams
      local share = lessons / limits.max_lessons
      local full = cpu >= 1 or streams >= 1 or share >= 1
      local score = cpu + streams + share
      local better = best == nil or score < best_score or (score == best_score and id < best)
      if not full and better then
        best, best_score = id, score
      end
    end
  end
end
if best == nil then
  return {}
end
hold(KEYS[1], prefix, best, ARGV[2], tonumber(ARGV[3]), now)
return {best, 1}
"""
)

# KEYS: lesson key.  ARGV: prefix, lesson id, node id, lease ms.  Returns the holder.
CLAIM = (
    COMMON
    + """
local holder = live_holder(KEYS[1], ARGV[1])
if holder and holder ~= ARGV[3] then
  return holder
end
hold(KEYS[1], ARGV[1], ARGV[3], ARGV[2], tonumber(ARGV[4]), now_ms())
return ARGV[3]
"""
)

# KEYS: lesson keys.  ARGV: prefix, node id, lease ms, lesson ids (in KEYS' order).
# Renews the node's leases, takes back lapsed ones nobody took; returns the lessons lost.
RENEW = (
    COMMON
    + """
local prefix, node, lease = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local lost = {}
for i, key in ipairs(KEYS) do
  local lesson = ARGV[3 + i]
  local holder = live_holder(key, prefix)
  if holder and holder ~= node then
    table.insert(lost, lesson)
    redis.call('ZREM', prefix .. 'node:' .. node .. ':lessons', lesson)
  else
    hold(key, prefix, node, lesson, lease, now)
  end
end
return lost
"""
)

# KEYS: lesson key.  ARGV: prefix, lesson id, node id.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('DEL', KEYS[1])
end
redis.call('ZREM', ARGV[1] .. 'node:' .. ARGV[3] .. ':lessons', ARGV[2])
return 1
"""

# KEYS: nodes set, node record, node's lessons.  ARGV: node id.
DEREGISTER = """
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[1], ARGV[1])
return 1
"""
