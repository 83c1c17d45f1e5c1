-- tertulia's publish script: gives a chat message its cluster-wide id and,
-- for a room message, its room's sequence number; appends it to the room's
-- history stream and publishes it on the room's channel, all in one atomic
-- step, so every node sees the room's messages in one order and a node that
-- missed some finds them in the stream by id.
--
-- KEYS[1] tt:id                 the cluster's last message id
-- KEYS[2] tt:room:<key>:seq     the room's last sequence number (room only)
-- KEYS[3] tt:room:<key>:log     the room's history stream (room only)
-- ARGV[1] deadline: Redis time in ms after which the message is refused
--         (0: none), so a message the node gave up on is never stored late
-- ARGV[2] id floor: the node's highest id seen (ids stay above it even if
--         Redis lost tt:id)
-- ARGV[3] channel, ARGV[4] body, ARGV[5] maxlen (0: keep all),
-- ARGV[6] seq floor: the node's last sequence number seen in the room
-- A private message (one key) with ARGV[3] the recipient's channel,
-- ARGV[4] the sender's and ARGV[5] the body is published as
-- "0 <id> <body>" on the recipient's channel and, when someone there got
-- it, on the sender's (its other connections' copies; skipped when the
-- same): returns {id, receivers, stored} (receivers 0: nobody has that
-- nickname now).
-- With ARGV[6] the conversation key ("@a@b", store_dm_key's), ARGV[7] and
-- ARGV[8] the sender's and the recipient's folded nicknames, ARGV[9] the
-- node, ARGV[10] maxlen and ARGV[11] the age cutoff (ms since the epoch,
-- 0: none), a private between two accounts (the sender no guest on its
-- node, the recipient an account no guest holds) is also stored, as on
-- one node: its room field becomes the recipient account's spelling, it
-- is appended to tt:dm:<key>:log (entry <id>-0, field m, trimmed to
-- maxlen and by age), its id to tt:dm:<key>:by:<sender> (a sorted set,
-- for unread counts), and each side's list tt:dms:<folded> (sorted set:
-- key by last id; tt:dms:<folded>:with: key -> the other side's
-- spelling) gets the conversation. A stored private is published on the
-- sender's channel even when the recipient has no connection (stored=1:
-- it is not `no_such_user`).
-- Returns {id, seq} (seq 0 for a private message's id alone).
local deadline = tonumber(ARGV[1])
if deadline > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now > deadline then
    return redis.error_reply('TT_LATE the node gave up on this message')
  end
end
-- The counter at key, one up, and above floor whatever Redis kept.
local function next_above(key, floor)
  local v = redis.call('INCR', key)
  if v <= tonumber(floor) then
    v = tonumber(floor) + 1
    redis.call('SET', key, v)
  end
  return v
end
-- The index of stored messages, for edit and delete: message id is in
-- the stream named by field id % 100 of hash tt:idx:<id / 100> (buckets
-- of 100 stay small listpacks). A stored message's branch writes it; what
-- trimming drops leaves it (forget).
local function index(id, key)
  redis.call('HSET', 'tt:idx:' .. math.floor(id / 100), id % 100, key)
end
local function forget(entry_id)
  local old = tonumber(string.sub(entry_id, 1, -3)) -- '<id>-0'
  redis.call('HDEL', 'tt:idx:' .. math.floor(old / 100), old % 100)
end
local id = next_above(KEYS[1], ARGV[2])
-- Whether a private from folded nickname f (of this node) to t is one
-- between accounts: the recipient's account spelling, or nil.
local function dm_between_accounts(f, t, node)
  if redis.call('EXISTS', 'tt:acct:nick:' .. f) == 0 or
     redis.call('HGET', 'tt:nick:' .. f, node) == 'g' then
    return nil
  end
  local acct = redis.call('GET', 'tt:acct:nick:' .. t)
  if not acct then
    return nil
  end
  for _, kind in ipairs(redis.call('HVALS', 'tt:nick:' .. t)) do
    if kind == 'g' then
      return nil
    end
  end
  return redis.call('HGET', 'tt:acct:' .. acct, 'nick')
end
-- Stores the private payload (id, its sender f and recipient t folded,
-- their spellings from_s and to_s) in conversation key.
local function dm_store(key, id, payload, f, t, from_s, to_s, maxlen, cutoff)
  local base = 'tt:dm:' .. key
  local log = base .. ':log'
  if maxlen > 0 then
    -- What MAXLEN drops leaves the index first, as a room's.
    local over = redis.call('XLEN', log) + 1 - maxlen
    if over > 0 then
      for _, e in ipairs(redis.call('XRANGE', log, '-', '+', 'COUNT', over)) do
        forget(e[1])
      end
    end
    redis.call('XADD', log, 'MAXLEN', maxlen, id .. '-0', 'm', payload)
  else
    redis.call('XADD', log, id .. '-0', 'm', payload)
  end
  index(id, log)
  redis.call('ZADD', base .. ':by:' .. f, id, id)
  if cutoff > 0 then
    -- Up to 16 of the oldest go, more than a message adds, so a
    -- conversation that grows keeps pace with the cutoff; readers trim
    -- the rest (store_redis_dm.c).
    local old = redis.call('XRANGE', log, '-', '+', 'COUNT', 16)
    local keep = (tonumber(string.match(old[#old][1], '^%d+')) + 1) .. '-0'
    for _, e in ipairs(old) do
      local ts = tonumber(string.match(e[2][2], '^%d+ %d+ (%-?%d+) '))
      if ts == nil or ts >= cutoff then
        keep = e[1]
        break
      end
      forget(e[1])
    end
    redis.call('XTRIM', log, 'MINID', keep)
  end
  -- The unread sets lose what the stream lost.
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1]
  local floor = first and ('(' .. string.match(first[1], '^%d+')) or '+inf'
  redis.call('ZREMRANGEBYSCORE', base .. ':by:' .. f, '-inf', floor)
  redis.call('ZREMRANGEBYSCORE', base .. ':by:' .. t, '-inf', floor)
  redis.call('ZADD', 'tt:dms:' .. f, id, key)
  redis.call('HSET', 'tt:dms:' .. f .. ':with', key, to_s)
  redis.call('ZADD', 'tt:dms:' .. t, id, key)
  redis.call('HSET', 'tt:dms:' .. t .. ':with', key, from_s)
end
if #KEYS == 1 then
  if ARGV[5] == nil then
    return {id, 0}
  end
  local body = ARGV[5]
  local stored = 0
  if ARGV[6] ~= nil and ARGV[6] ~= '' then
    local to_s = dm_between_accounts(ARGV[7], ARGV[8], ARGV[9])
    -- body: "<ts> <node> <token> <from> <room> <mentions> <text>"
    local head, from_s, tail = nil, nil, nil
    if to_s then
      head, from_s, tail = string.match(body, '^(%S+ %S+ %S+ )(%S+) %S+( .*)$')
    end
    if head ~= nil then
      body = head .. from_s .. ' ' .. to_s .. tail
      dm_store(ARGV[6], id, '0 ' .. id .. ' ' .. body, ARGV[7], ARGV[8], from_s, to_s,
               tonumber(ARGV[10]), tonumber(ARGV[11]))
      stored = 1
    end
  end
  -- On the channels a private's sequence number says whether it is
  -- stored (1): its recipient's node then never reports it undelivered.
  local payload = stored .. ' ' .. id .. ' ' .. body
  local got = redis.call('PUBLISH', ARGV[3], payload)
  if (got > 0 or stored == 1) and ARGV[4] ~= ARGV[3] then
    redis.call('PUBLISH', ARGV[4], payload)
  end
  return {id, got, stored}
end
local seq = next_above(KEYS[2], ARGV[6])
local payload = seq .. ' ' .. id .. ' ' .. ARGV[4]
local maxlen = tonumber(ARGV[5])
if maxlen > 0 then
  -- What MAXLEN drops (the oldest, one a message once the room is full)
  -- leaves the index first. A room holds at most seq entries: until seq
  -- passes maxlen there is nothing to look at.
  if seq > maxlen then
    local over = redis.call('XLEN', KEYS[3]) + 1 - maxlen
    if over > 0 then
      for _, e in ipairs(redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', over)) do
        forget(e[1])
      end
    end
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', maxlen, id .. '-0', 'm', payload)
else
  redis.call('XADD', KEYS[3], id .. '-0', 'm', payload)
end
index(id, KEYS[3])
redis.call('PUBLISH', ARGV[3], payload)
return {id, seq}
