//! The Lua scripts that make each directory change atomic. Redis runs a script alone, so a
//! check and the write that depends on it (compare-and-set on the owner) can never interleave
//! with another replica's. Time comes from Redis (`TIME`), never from a replica's clock, so
//! skewed clocks cannot make a live replica look expired.

use std::sync::LazyLock;

use redis::Script;

/// Redis' clock in milliseconds, as a Lua prelude.
macro_rules! now_ms {
    () => {
        "local t = redis.call('TIME')\n\
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// Register or heartbeat. KEYS: replica key, index. ARGV: id, address, ttl ms.
/// Also prunes expired ids from the index and keeps the index alive as long as its
/// longest-lived member.
pub(super) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        "local ttl = tonumber(ARGV[3])\n\
         redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)\n\
         redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n\
         redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])\n\
         if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end\n\
         return 1"
    ))
});

/// The live replicas as a flat list: id, address, id, address … KEYS: index.
/// ARGV: the replica key prefix (ids are appended to it).
pub(super) static LIVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        "local out = {}\n\
         for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do\n\
           local addr = redis.call('GET', ARGV[1] .. id)\n\
           if addr then table.insert(out, id); table.insert(out, addr) end\n\
         end\n\
         return out"
    ))
});

/// Create a session record unless one exists. KEYS: session. ARGV: ttl ms, then field,
/// value pairs. Returns 1 when created, 0 when the id was taken.
pub(super) static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n\
         redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n\
         redis.call('PEXPIRE', KEYS[1], ARGV[1])\n\
         return 1",
    )
});

/// Keep a record alive, only for its owner. KEYS: session. ARGV: owner, ttl ms.
/// Returns 1, or 0 when the record is gone or has another owner (it was taken over).
pub(super) static REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n\
         redis.call('PEXPIRE', KEYS[1], ARGV[2])\n\
         return 1",
    )
});

/// Set one field (or remove it, when the value is empty), only for the owner.
/// KEYS: session. ARGV: owner, ttl ms, field, value. Returns 1, or 0 when not the owner.
pub(super) static SET_FIELD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n\
         if ARGV[4] == '' then redis.call('HDEL', KEYS[1], ARGV[3])\n\
         else redis.call('HSET', KEYS[1], ARGV[3], ARGV[4]) end\n\
         redis.call('PEXPIRE', KEYS[1], ARGV[2])\n\
         return 1",
    )
});

/// Delete a record, only for its owner. KEYS: session. ARGV: owner. Returns 1 or 0.
pub(super) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end\n\
         redis.call('DEL', KEYS[1])\n\
         return 1",
    )
});

/// The takeover compare-and-set. KEYS: session, the expected owner's replica key.
/// ARGV: expected owner, new owner, '1' when the owner's registration must have expired,
/// ttl ms. Returns {outcome, detail}: {'taken', new epoch}, {'changed', current owner},
/// {'alive', owner} or {'gone', ''}.
pub(super) static TAKEOVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local cur = redis.call('HGET', KEYS[1], 'owner')\n\
         if not cur then return {'gone', ''} end\n\
         if cur ~= ARGV[1] then return {'changed', cur} end\n\
         if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return {'alive', cur} end\n\
         redis.call('HSET', KEYS[1], 'owner', ARGV[2])\n\
         local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)\n\
         redis.call('PEXPIRE', KEYS[1], ARGV[4])\n\
         return {'taken', tostring(epoch)}",
    )
});
