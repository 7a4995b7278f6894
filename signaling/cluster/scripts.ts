import { script } from './link.js';

/*
 * The cluster's Lua scripts. Each runs atomically on the shard that owns its keys: every
 * key of one room carries the room in its hash tag, so a room's members hash, version
 * counter, inboxes and channel live in one slot and a script may SPUBLISH membership
 * events on the room channel in the same step as the change. Redis refuses a script that
 * touches another slot ("non local key"), which is why maxRooms has a script of its own.
 *
 * A member record is `node|tokenHash|graceDeadline|metaJson` (see wire.ts): `node` is empty
 * while the member's node is dead and nobody has resumed it (an orphan in its grace period).
 */

const RECORD = "'^([^|]*)|([^|]*)|([^|]*)|(.*)$'";

/**
 * KEYS members, version, channel. ARGV id, record, maxPeers, allowNew, keyTtlMs.
 * An empty room is created only with allowNew (after the maxRooms lease was granted).
 */
export const JOIN = script(`
local n = redis.call('HLEN', KEYS[1])
if n == 0 and ARGV[4] ~= '1' then return {'new'} end
if n >= tonumber(ARGV[3]) then return {'full'} end
local all = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local v = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SPUBLISH', KEYS[3], 'j|' .. v .. '|' .. ARGV[1] .. '|' .. ARGV[2])
return {'ok', v, all}
`);

/**
 * KEYS members, version, channel, inbox. ARGV id, expectedOwner, expectedGrace ('*': any), emptyRoomTtlMs.
 * Only the member's owner may remove it (a node that lost it to a resume elsewhere must
 * not), and an orphan only while it is still the orphan the caller saw.
 */
export const LEAVE = script(`
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local owner, s, g = string.match(rec, ${RECORD})
if owner ~= ARGV[2] then return 0 end
if ARGV[3] ~= '*' and g ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[4])
local v = redis.call('INCR', KEYS[2])
-- An empty room keeps its version only briefly: long enough that a join in flight never
-- sees versions go back, short enough that nothing of a gone room stays in Redis.
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
redis.call('SPUBLISH', KEYS[3], 'l|' .. v .. '|' .. ARGV[1])
return 1
`);

/**
 * KEYS members, version, channel, inbox. ARGV id, tokenHash, node, keyTtlMs.
 * A resume on any node: the token's hash must match. Moves the member to `node`, hands
 * back what waited in its inbox, and announces the move (the old node, if alive, hands
 * over what it queued and lets go of the member).
 */
export const CLAIM = script(`
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return {'expired'} end
local owner, s, g, meta = string.match(rec, ${RECORD})
if s ~= ARGV[2] then return {'expired'} end
local nrec = ARGV[3] .. '|' .. s .. '||' .. meta
redis.call('HSET', KEYS[1], ARGV[1], nrec)
local v = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SPUBLISH', KEYS[3], 'm|' .. v .. '|' .. ARGV[1] .. '|' .. owner .. '|' .. nrec)
local q = redis.call('LRANGE', KEYS[4], 0, -1)
redis.call('DEL', KEYS[4])
return {'ok', v, owner, q, redis.call('HGETALL', KEYS[1])}
`);

/** KEYS members. ARGV id, node, tokenHash: the owner rotated the member's resume token. */
export const SET_TOKEN = script(`
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
local owner, s, g, meta = string.match(rec, ${RECORD})
if owner ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], owner .. '|' .. ARGV[3] .. '|' .. g .. '|' .. meta)
return 1
`);

/**
 * KEYS members, inbox. ARGV id, triedNode, frame, maxQueue, ttlMs.
 * A frame that no node took (its node is dead, or between nodes): kept in the member's
 * bounded inbox for its resume, unless the member has moved on (then: where to).
 */
export const QUEUE = script(`
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return {'gone'} end
local owner = string.match(rec, '^([^|]*)|')
if owner ~= '' and owner ~= ARGV[2] then return {'moved', owner} end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[4]) then return {'full', owner} end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {'queued', owner}
`);

/** KEYS inbox: takes everything in it. */
export const TAKE = script(`
local q = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return q
`);

/**
 * KEYS members, version, channel. ARGV deadNode, graceDeadline.
 * The dead node's members become orphans for their grace period; returns their ids.
 */
export const ORPHAN = script(`
local all = redis.call('HGETALL', KEYS[1])
local ids = {}
for i = 1, #all, 2 do
  local owner, s, g, meta = string.match(all[i + 1], ${RECORD})
  if owner == ARGV[1] then
    redis.call('HSET', KEYS[1], all[i], '|' .. s .. '|' .. ARGV[2] .. '|' .. meta)
    ids[#ids + 1] = all[i]
  end
end
if #ids > 0 then
  local v = redis.call('INCR', KEYS[2])
  redis.call('SPUBLISH', KEYS[3], 'o|' .. v .. '|' .. table.concat(ids, ','))
end
return ids
`);

/**
 * KEYS members, version, channel. ARGV node, keyTtlMs, recreate, then id/record pairs.
 * Puts this node's members back after Redis lost them (recreate = 1: a restarted Redis
 * without persistence) or after this node was taken for dead (recreate = 0: only orphans
 * that nobody resumed come back). Returns the ids this node no longer owns.
 */
export const SYNC = script(`
local lost = {}
for i = 4, #ARGV, 2 do
  local id, want = ARGV[i], ARGV[i + 1]
  local rec = redis.call('HGET', KEYS[1], id)
  if not rec then
    if ARGV[3] == '1' then redis.call('HSET', KEYS[1], id, want) else lost[#lost + 1] = id end
  else
    local owner, s = string.match(rec, ${RECORD})
    local ws = string.match(want, '^[^|]*|([^|]*)|')
    -- Ours still (its token may have rotated meanwhile), or an orphan nobody resumed.
    if owner == ARGV[1] or (owner == '' and s == ws) then redis.call('HSET', KEYS[1], id, want)
    else lost[#lost + 1] = id end
  end
end
local v = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SPUBLISH', KEYS[3], 'r|' .. v)
return lost
`);

/** KEYS members, version. A room's members and version, read together. */
export const SNAPSHOT = script(`
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('HGETALL', KEYS[1])}
`);

/**
 * KEYS nodes (zset), epoch. ARGV node, nodeTtlMs, epochCandidate.
 * The node heartbeat, on Redis's clock (nodes' clocks may disagree). Returns the epoch
 * (a value that changes only when Redis lost its data), whether this node was still
 * registered, the time, the live node count, and the nodes whose heartbeat lapsed: each
 * is returned to exactly one caller, which adopts its members.
 */
export const HEARTBEAT = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local e = redis.call('GET', KEYS[2])
if not e then
  redis.call('SET', KEYS[2], ARGV[3])
  e = ARGV[3]
end
local present = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
for _, d in ipairs(dead) do redis.call('ZREM', KEYS[1], d) end
return {e, present and 1 or 0, now, redis.call('ZCARD', KEYS[1]), dead}
`);

/** KEYS nodes. ARGV node: a node that stops on purpose leaves the heartbeat set. */
export const NODE_LEAVE = script(`return redis.call('ZREM', KEYS[1], ARGV[1])`);

/**
 * KEYS rooms (zset of room -> lease end). ARGV room, maxRooms, leaseMs.
 * maxRooms over the cluster: a new room takes a lease that the nodes hosting it renew
 * with every heartbeat, so a room whose nodes all died stops counting within one lease.
 */
export const ROOM_LEASE = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
`);

/** KEYS rooms. ARGV leaseMs, then room names: renews their leases (and drops lapsed ones). */
export const RENEW_LEASES = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
return #ARGV - 1
`);
