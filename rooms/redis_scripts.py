"""The Redis store's Lua scripts (rooms/store_redis.py).

Every write is a single Lua script (or a single command), so
nodes never interleave half-done updates. Read-modify-write of a JSON record
(opening / ending / updating a lesson, attendance) is an optimistic
compare-and-set: read, compute the new record in Python, and a script writes
it only if the stored JSON is still what was read; otherwise retry. Creating a
lesson is a compare-and-set on `active:<integration>:<group>`, so of any number of
concurrent creates for one class, on any nodes, exactly one succeeds.

Lifetime. expire_call(call_id, n) sets every key of the call, the lesson
record and (if it still points at this lesson) the class's active key to
expire n seconds from now, and records that deadline in call:<id>:expires.
Every later write to the call applies the same deadline to the keys it
writes, so state written after expire_call (a last chat message, a leave)
still goes away with the rest, as with the memory store. The lesson indexes
are not per call and never expire: ids of lessons that have expired are
pruned from an index when it is next read. An active key can outlive its
lesson only until the next create for that class, which treats an active key
whose lesson record is gone as free.

Scripts touch keys of more than one family (index, active, lesson), so this
targets a single Redis (or Sentinel), not Redis Cluster.
"""

# Shared by every script that writes call state: if expire_call has set a
# deadline for the call (KEYS[deadline] holds it in unix ms), the keys just
# written expire then too.
FOLLOW = """
local function follow(deadline_key, ...)
  local at = redis.call('GET', deadline_key)
  if at then
    for _, key in ipairs({...}) do
      redis.call('PEXPIREAT', key, at)
    end
  end
end
"""

# KEYS: active, new lesson, lesson the active key pointed at when read (or the
#       new lesson again), integration index, class index, lessons:seq, deadline
# ARGV: active id as read ('' if none), lesson JSON, lesson id, '1' if active
CREATE_LESSON = (
    FOLLOW
    + """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return {'retry'}
end
if current ~= '' then
  local doc = redis.call('GET', KEYS[3])
  if doc then
    return {'conflict', doc}
  end
end
redis.call('SET', KEYS[2], ARGV[2])
local n = redis.call('INCR', KEYS[6])
redis.call('ZADD', KEYS[4], 'NX', n, ARGV[3])
redis.call('ZADD', KEYS[5], 'NX', n, ARGV[3])
follow(KEYS[7], KEYS[2])
if ARGV[4] == '1' then
  redis.call('SET', KEYS[1], ARGV[3])
  follow(KEYS[7], KEYS[1])
end
return {'ok'}
"""
)

# KEYS: lesson, active, deadline
# ARGV: JSON as read, new JSON, lesson id, '1' to free the class
UPDATE_LESSON = (
    FOLLOW
    + """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2])
follow(KEYS[3], KEYS[1])
if ARGV[4] == '1' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
end
return 1
"""
)

# KEYS: deadline, lesson, class active key (or the deadline key again), call keys...
# ARGV: deadline in unix ms, call id
EXPIRE_CALL = """
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
for i = 4, #KEYS do
  redis.call('PEXPIREAT', KEYS[i], ARGV[1])
end
redis.call('PEXPIREAT', KEYS[2], ARGV[1])
if KEYS[3] ~= KEYS[1] and redis.call('GET', KEYS[3]) == ARGV[2] then
  redis.call('PEXPIREAT', KEYS[3], ARGV[1])
end
return 1
"""

# KEYS: key, deadline.  ARGV: value
SET = (
    FOLLOW
    + """
redis.call('SET', KEYS[1], ARGV[1])
follow(KEYS[2], KEYS[1])
return 1
"""
)

# An ordered hash: KEYS: hash, order, call seq, deadline.  ARGV: field, JSON
ORDERED_PUT = (
    FOLLOW
    + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
follow(KEYS[4], KEYS[1], KEYS[2], KEYS[3])
return 1
"""
)

# Compare-and-set of one field of an ordered hash ('' = the field is absent).
# KEYS: hash, order, call seq, deadline.  ARGV: field, JSON as read, new JSON
ORDERED_CAS = (
    FOLLOW
    + """
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
follow(KEYS[4], KEYS[1], KEYS[2], KEYS[3])
return 1
"""
)

# KEYS: hash, order.  ARGV: field.  Returns the removed JSON (nil if absent).
ORDERED_TAKE = """
local value = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return value
"""

# KEYS: hands, call seq, deadline.  ARGV: participant id.  Returns the queue.
RAISE_HAND = (
    FOLLOW
    + """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false then
  redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), ARGV[1])
end
follow(KEYS[3], KEYS[1], KEYS[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)

# KEYS: hands.  ARGV: participant id.  Returns the queue.
LOWER_HAND = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS: chat stream, chat seq, deadline.  ARGV: message JSON.  Returns its id.
# A sliding-window rate limit on the Redis server's clock (one clock for all
# nodes): KEYS the window's sorted set and its member counter; ARGV limit, window (µs). Returns -1
# when the event is counted, else the µs until one more would be allowed.
RATE_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  local n = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], math.ceil(window / 1000))
  redis.call('ZADD', KEYS[1], now, n)
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(oldest[2]) + window - now
"""

APPEND_CHAT = (
    FOLLOW
    + """
local n = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], n .. '-0', 'm', ARGV[1])
follow(KEYS[3], KEYS[1], KEYS[2])
return n
"""
)

# One answer per voter: KEYS: the poll's answers hash, deadline.  ARGV: voter, JSON.
# Returns 1 when kept, 0 when the voter had answered already (nothing changes).
ANSWER_POLL = (
    FOLLOW
    + """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
follow(KEYS[2], KEYS[1])
return 1
"""
)
