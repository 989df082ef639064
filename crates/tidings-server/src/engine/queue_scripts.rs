//! The Lua scripts of the Redis queues (`queues.rs`), each atomic in Redis.
//!
//! Keys per queue (`P` is `[engine] prefix`): `P:q:NAME` a stream (entry id `SEQ-0`, fields
//! `b` body, `c` cost in bytes, `t` publish time in ms) with one consumer group `g` whose
//! consumers are the nodes; `P:qm:NAME` a hash `{n: last sequence, b: bytes stored}`.
//! Shared: `P:qtotal` (bytes stored in every queue), `P:queues` (the set of queue names).
//! `P:qw:NAME` is the wake-up channel (`n`: new messages, `r`: some were handed back).
//! A queue whose stream is left empty is deleted with its hash and name, so the sequence
//! starts again at 1 only when no message of it exists anywhere.

/// `release(freed)`: returns `freed` bytes to the queue's and the total budget, and deletes
/// an emptied queue (KEYS[1] stream, KEYS[2] hash, KEYS[3] total, KEYS[4] names, ARGV[1] name).
const RELEASE: &str = r"
local function release(freed)
  if freed > 0 then
    redis.call('HINCRBY', KEYS[2], 'b', -freed)
    redis.call('DECRBY', KEYS[3], freed)
  end
  if redis.call('XLEN', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[1], KEYS[2])
    redis.call('SREM', KEYS[4], ARGV[1])
  end
end
";

/// Publishes N messages all or none. KEYS: total, names, then per message its stream and
/// hash. ARGV: max_messages, max_bytes, max_total_bytes, max_queues, prefix, then per
/// message name, cost, body, time. Returns `{'ok', seq...}`, `{'full', name}`,
/// `{'total'}` or `{'queues'}`.
pub(super) const PUBLISH: &str = r"
local n = (#KEYS - 2) / 2
local total = tonumber(redis.call('GET', KEYS[1]) or '0')
local per, order, add = {}, {}, 0
for i = 1, n do
  local a = 6 + 4 * (i - 1)
  local s = KEYS[2 * i + 1]
  local w = per[s]
  if not w then
    w = {0, 0, KEYS[2 * i + 2], ARGV[a]}
    per[s] = w
    order[#order + 1] = s
  end
  w[1] = w[1] + 1
  w[2] = w[2] + tonumber(ARGV[a + 1])
  add = add + tonumber(ARGV[a + 1])
end
if total + add > tonumber(ARGV[3]) then return {'total'} end
local queues = redis.call('SCARD', KEYS[2])
for _, s in ipairs(order) do
  local w = per[s]
  local len, pending = 0, 0
  if redis.call('EXISTS', s) == 1 then
    len = redis.call('XLEN', s)
    pending = redis.call('XPENDING', s, 'g')[1]
  elseif redis.call('SISMEMBER', KEYS[2], w[4]) == 0 then
    queues = queues + 1
    if queues > tonumber(ARGV[4]) then return {'queues'} end
  end
  local bytes = tonumber(redis.call('HGET', w[3], 'b') or '0')
  if len - pending + w[1] > tonumber(ARGV[1]) or bytes + w[2] > tonumber(ARGV[2]) then
    return {'full', w[4]}
  end
end
local out = {'ok'}
for i = 1, n do
  local a = 6 + 4 * (i - 1)
  local s, m = KEYS[2 * i + 1], KEYS[2 * i + 2]
  if redis.call('EXISTS', s) == 0 then
    redis.call('XGROUP', 'CREATE', s, 'g', '0', 'MKSTREAM')
  end
  local seq = redis.call('HINCRBY', m, 'n', 1)
  redis.call('XADD', s, seq .. '-0', 'b', ARGV[a + 2], 'c', ARGV[a + 1], 't', ARGV[a + 3])
  redis.call('HINCRBY', m, 'b', ARGV[a + 1])
  redis.call('INCRBY', KEYS[1], ARGV[a + 1])
  redis.call('SADD', KEYS[2], ARGV[a])
  redis.call('PUBLISH', ARGV[5] .. ':qw:' .. ARGV[a], 'n')
  out[#out + 1] = seq
end
return out
";

/// Takes at most ARGV[2] messages for the node ARGV[3]: first entries another consumer
/// held longer than ARGV[4] ms (a dead node's, or handed back), scanning the pending list
/// from the cursor ARGV[5]; then new ones. A new message older than ARGV[6] ms (> 0) at
/// ARGV[7] (now) is dropped instead (the queue TTL). KEYS: stream, hash, total, names.
/// Returns `{cursor, claimed count, id, body, id, body, ...}`, claimed first.
pub(super) fn fetch() -> String {
    format!(
        "{RELEASE}{}",
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', 0} end
local want = tonumber(ARGV[2])
local out = {'0-0', 0}
local c = redis.call('XAUTOCLAIM', KEYS[1], 'g', ARGV[3], ARGV[4], ARGV[5], 'COUNT', want)
out[1] = c[1]
for _, e in ipairs(c[2]) do
  if e[2] then
    out[#out + 1] = e[1]
    out[#out + 1] = e[2][2]
    out[2] = out[2] + 1
    want = want - 1
  end
end
if want > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', 'g', ARGV[3], 'COUNT', want, 'STREAMS', KEYS[1], '>')
  local ttl, now, freed = tonumber(ARGV[6]), tonumber(ARGV[7]), 0
  if r then
    for _, e in ipairs(r[1][2]) do
      if ttl > 0 and now - tonumber(e[2][6]) >= ttl then
        redis.call('XACK', KEYS[1], 'g', e[1])
        redis.call('XDEL', KEYS[1], e[1])
        freed = freed + tonumber(e[2][4])
      else
        out[#out + 1] = e[1]
        out[#out + 1] = e[2][2]
      end
    end
  end
  if freed > 0 then release(freed) end
end
return out
"
    )
}

/// Acknowledges the sequences ARGV[2..] (`XACK`, then `XDEL`: an acknowledged message is
/// gone) and returns their bytes to the budgets. KEYS: stream, hash, total, names.
pub(super) fn ack() -> String {
    format!(
        "{RELEASE}{}",
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local freed = 0
for i = 2, #ARGV do
  local id = ARGV[i] .. '-0'
  if redis.call('XACK', KEYS[1], 'g', id) == 1 then
    local e = redis.call('XRANGE', KEYS[1], id, id)
    if #e > 0 then
      freed = freed + tonumber(e[1][2][4])
      redis.call('XDEL', KEYS[1], id)
    end
  end
end
release(freed)
return freed
"
    )
}

/// For the sequences ARGV[4..] still held by the node ARGV[1] in KEYS[1]: sets their idle
/// time to ARGV[2] ms (0: a lease renewal; huge: handed back, so the next claim of any node
/// takes them) and, when ARGV[3] is a channel, wakes the nodes. Returns how many.
pub(super) const RECLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local args = {'XCLAIM', KEYS[1], 'g', ARGV[1], '0'}
for i = 4, #ARGV do
  local id = ARGV[i] .. '-0'
  if #redis.call('XPENDING', KEYS[1], 'g', id, id, 1, ARGV[1]) > 0 then
    args[#args + 1] = id
  end
end
local n = #args - 5
if n == 0 then return 0 end
args[#args + 1] = 'IDLE'
args[#args + 1] = ARGV[2]
args[#args + 1] = 'JUSTID'
redis.call(unpack(args))
if ARGV[3] ~= '' then redis.call('PUBLISH', ARGV[3], 'r') end
return n
";

/// The admin's purge, at most ARGV[2] entries of each kind per call: drops the entries
/// never delivered (after group `g`'s last-delivered id) and those handed back (pending and
/// idle ≥ ARGV[3] ms, which only `RECLAIM`'s hand-back gives), not what a consumer holds.
/// KEYS: stream, hash, total, names; ARGV[1] name. Returns `{dropped, more}` (`more` 1 when
/// a kind hit the limit), `{-1, 0}` when the queue has no stream.
pub(super) fn purge() -> String {
    format!(
        "{RELEASE}{}",
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, 0} end
local limit = tonumber(ARGV[2])
local last = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local f = {}
  for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
  if f['name'] == 'g' then last = f['last-delivered-id'] end
end
local freed, n = 0, 0
local new = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', limit)
for _, e in ipairs(new) do
  freed = freed + tonumber(e[2][4])
  redis.call('XDEL', KEYS[1], e[1])
  n = n + 1
end
local back = redis.call('XPENDING', KEYS[1], 'g', 'IDLE', ARGV[3], '-', '+', limit)
for _, p in ipairs(back) do
  redis.call('XACK', KEYS[1], 'g', p[1])
  local e = redis.call('XRANGE', KEYS[1], p[1], p[1])
  if #e > 0 then
    freed = freed + tonumber(e[1][2][4])
    redis.call('XDEL', KEYS[1], p[1])
    n = n + 1
  end
end
release(freed)
local more = 0
if #new == limit or #back == limit then more = 1 end
return {n, more}
"
    )
}

/// The admin's view of the queues whose stream and hash keys are KEYS (in pairs): per queue
/// `{waiting, held, last sequence, {node holding some...}}`, zeros for a queue with no
/// stream. Waiting counts the never delivered and the handed back (pending, idle ≥ ARGV[1]
/// ms; at most ARGV[2] of them looked at per queue); held is the rest of the pending ones.
pub(super) const STATS: &str = r"
local out = {}
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local p = redis.call('XPENDING', KEYS[i], 'g')
    local held = {}
    if p[4] then
      for _, c in ipairs(p[4]) do held[c[1]] = tonumber(c[2]) end
    end
    local back = redis.call('XPENDING', KEYS[i], 'g', 'IDLE', ARGV[1], '-', '+', ARGV[2])
    for _, e in ipairs(back) do held[e[2]] = (held[e[2]] or 0) - 1 end
    local holders = {}
    for name, n in pairs(held) do
      if n > 0 then holders[#holders + 1] = name end
    end
    local seq = tonumber(redis.call('HGET', KEYS[i + 1], 'n') or '0')
    local len = redis.call('XLEN', KEYS[i])
    out[#out + 1] = {len - p[1] + #back, p[1] - #back, seq, holders}
  else
    out[#out + 1] = {0, 0, 0, {}}
  end
end
return out
";
