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
-- same): returns {id, receivers} (0: nobody has that nickname now).
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
local id = next_above(KEYS[1], ARGV[2])
if #KEYS == 1 then
  if ARGV[5] == nil then
    return {id, 0}
  end
  local payload = '0 ' .. id .. ' ' .. ARGV[5]
  local got = redis.call('PUBLISH', ARGV[3], payload)
  if got > 0 and ARGV[4] ~= ARGV[3] then
    redis.call('PUBLISH', ARGV[4], payload)
  end
  return {id, got}
end
local seq = next_above(KEYS[2], ARGV[6])
local payload = seq .. ' ' .. id .. ' ' .. ARGV[4]
local maxlen = tonumber(ARGV[5])
if maxlen > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', maxlen, id .. '-0', 'm', payload)
else
  redis.call('XADD', KEYS[3], id .. '-0', 'm', payload)
end
redis.call('PUBLISH', ARGV[3], payload)
return {id, seq}
