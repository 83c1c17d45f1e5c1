-- tertulia's presence script: who is where across the cluster's nodes.
-- One script, several operations (ARGV[1]); keys are named here from the
-- arguments, so it needs a single Redis (not Redis Cluster).
--
--   tt:nodes                    the nodes that have announced themselves
--   tt:node:<n>:alive           a node's liveness lease (PX), renewed by it
--   tt:node:<n>:nicks           the nicknames a node claimed
--   tt:node:<n>:rooms           the rooms a node has people in (keys)
--   tt:nick:<folded>            hash: node -> 'g' (a guest) or 'a' (an account)
--   tt:nickh:<folded>           a guest's resume token hash (hex): another
--                               node may hold the guest too with it
--   tt:nickp:<folded>           a lost node's guest in its grace time (PX): its
--                               nickname is kept for its resume token
--   tt:rooms                    hash: room key -> its spelling (the first node's)
--   tt:room:<k>:nodes           the nodes with people in the room
--   tt:room:<k>:node:<n>        the nicknames present in the room through node n
--
-- Room channels (<chan><k>: tt:room:<k>, or tt:<db>:room:<k> on a database
-- other than 0) carry presence changes besides messages:
--   "P+ <node> <nick> <ts>" and "P- <node> <nick> <reason> <ts>",
-- one per node's share: a person in a room through two nodes (an account
-- logged in on both, a guest resumed on another) has two, and each node
-- counts the shares, so that its members hear member_joined when the first
-- begins and member_left when the last ends, whichever node's it is. A
-- node decides from its own view, at once: the share of its own users is
-- its own to know, and the others' reach it here, in order.
-- ARGV[1] is the operation, ARGV[2] the room channels' prefix, then its own.
local op = ARGV[1]
local chan = ARGV[2]
local A = {}
for i = 3, #ARGV do
  A[#A + 1] = ARGV[i]
end

local function alive(n)
  return redis.call('EXISTS', 'tt:node:' .. n .. ':alive') == 1
end

-- Whether nick is in room k through a node other than `node`.
local function elsewhere(k, nick, node)
  for _, n in ipairs(redis.call('SMEMBERS', 'tt:room:' .. k .. ':nodes')) do
    if n ~= node and redis.call('SISMEMBER', 'tt:room:' .. k .. ':node:' .. n, nick) == 1 then
      return true
    end
  end
  return false
end

-- The shares and claims of node `dead` end (it is lost, or started again
-- under its name): a P- with node_lost for each of its shares; its guests'
-- nicknames stay theirs for the grace time (ms; a resume on any node takes
-- them back).
-- Node n's share of room k ends: a P- (reason) for each of its people there.
local function drop_share(k, n, reason, ts)
  local set = 'tt:room:' .. k .. ':node:' .. n
  for _, nick in ipairs(redis.call('SMEMBERS', set)) do
    redis.call('PUBLISH', chan .. k, 'P- ' .. n .. ' ' .. nick .. ' ' .. reason .. ' ' .. ts)
  end
  redis.call('DEL', set)
  redis.call('SREM', 'tt:room:' .. k .. ':nodes', n)
end

local function drop_node(dead, ts, grace)
  local rooms = 'tt:node:' .. dead .. ':rooms'
  for _, k in ipairs(redis.call('SMEMBERS', rooms)) do
    drop_share(k, dead, 'node_lost', ts)
  end
  redis.call('DEL', rooms)
  local nicks = 'tt:node:' .. dead .. ':nicks'
  for _, nick in ipairs(redis.call('SMEMBERS', nicks)) do
    local kind = redis.call('HGET', 'tt:nick:' .. nick, dead)
    redis.call('HDEL', 'tt:nick:' .. nick, dead)
    if redis.call('EXISTS', 'tt:nick:' .. nick) == 0 then
      if kind == 'g' and grace > 0 and redis.call('EXISTS', 'tt:nickh:' .. nick) == 1 then
        redis.call('SET', 'tt:nickp:' .. nick, dead, 'PX', grace)
        redis.call('PEXPIRE', 'tt:nickh:' .. nick, grace)
      else
        redis.call('DEL', 'tt:nickh:' .. nick)
      end
    end
  end
  redis.call('DEL', nicks)
end

if op == 'alive' then
  -- ARGV: node, lease ms. Returns the nodes whose lease ran out.
  local node, lease = A[1], A[2]
  redis.call('SET', 'tt:node:' .. node .. ':alive', '1', 'PX', lease)
  redis.call('SADD', 'tt:nodes', node)
  local dead = {}
  for _, n in ipairs(redis.call('SMEMBERS', 'tt:nodes')) do
    if not alive(n) then
      dead[#dead + 1] = n
    end
  end
  return dead
elseif op == 'claim' then
  -- ARGV: folded nick, node, kind ('g' or 'a'), a guest's resume token
  -- hash ('-': a new guest). Returns 1 (ours now) or 0.
  local key = 'tt:nick:' .. A[1]
  local node, kind, hash = A[2], A[3], A[4]
  local holders = redis.call('HGETALL', key)
  local taken = false
  -- A guest held elsewhere is held here too when the token is its own.
  local resumes = kind == 'g' and hash ~= nil and hash ~= '-' and
                    redis.call('GET', 'tt:nickh:' .. A[1]) == hash
  -- The guest of a lost node, in its grace time: its own token only.
  if redis.call('EXISTS', 'tt:nickp:' .. A[1]) == 1 then
    if not resumes then
      return 0
    end
    redis.call('DEL', 'tt:nickp:' .. A[1])
    redis.call('PERSIST', 'tt:nickh:' .. A[1])
  end
  for i = 1, #holders, 2 do
    local n, k = holders[i], holders[i + 1]
    if not alive(n) then
      redis.call('HDEL', key, n) -- a lost node's claim is stale
    elseif n ~= node and (kind == 'g' or k == 'g') and not (resumes and k == 'g') then
      taken = true
    end
  end
  if taken then
    return 0
  end
  redis.call('HSET', key, node, kind)
  redis.call('SADD', 'tt:node:' .. node .. ':nicks', A[1])
  return 1
elseif op == 'release' then
  -- ARGV: folded nick, node.
  redis.call('HDEL', 'tt:nick:' .. A[1], A[2])
  redis.call('SREM', 'tt:node:' .. A[2] .. ':nicks', A[1])
  if redis.call('EXISTS', 'tt:nick:' .. A[1]) == 0 then
    redis.call('DEL', 'tt:nickh:' .. A[1])
  end
  return 1
elseif op == 'token' then
  -- ARGV: folded nick, the new guest's resume token hash (hex).
  redis.call('SET', 'tt:nickh:' .. A[1], A[2])
  return 1
elseif op == 'join' or op == 'leave' then
  -- ARGV: room key, nick, node, ts, reason (leave) or the room's spelling
  -- (join). Publishes the node's share beginning or ending; returns 1 when
  -- the person came into the room or left it cluster-wide (no other node
  -- has it there), 0 when not, or when nothing changed.
  local k, nick, node, ts = A[1], A[2], A[3], A[4]
  local set = 'tt:room:' .. k .. ':node:' .. node
  local room_chan = chan .. k
  if op == 'join' then
    redis.call('HSETNX', 'tt:rooms', k, A[5])
    local added = redis.call('SADD', set, nick)
    redis.call('SADD', 'tt:room:' .. k .. ':nodes', node)
    redis.call('SADD', 'tt:node:' .. node .. ':rooms', k)
    if added == 0 then
      return 0
    end
    redis.call('PUBLISH', room_chan, 'P+ ' .. node .. ' ' .. nick .. ' ' .. ts)
    return elsewhere(k, nick, node) and 0 or 1
  else
    local removed = redis.call('SREM', set, nick)
    if redis.call('SCARD', set) == 0 then
      redis.call('SREM', 'tt:room:' .. k .. ':nodes', node)
      redis.call('SREM', 'tt:node:' .. node .. ':rooms', k)
    end
    if removed == 0 then
      return 0
    end
    redis.call('PUBLISH', room_chan, 'P- ' .. node .. ' ' .. nick .. ' ' .. A[5] .. ' ' .. ts)
    return elsewhere(k, nick, node) and 0 or 1
  end
elseif op == 'people' then
  -- ARGV: room key. Returns node, nick, node, nick, ... of live nodes.
  local k = A[1]
  local out = {}
  for _, n in ipairs(redis.call('SMEMBERS', 'tt:room:' .. k .. ':nodes')) do
    if alive(n) then
      for _, nick in ipairs(redis.call('SMEMBERS', 'tt:room:' .. k .. ':node:' .. n)) do
        out[#out + 1] = n
        out[#out + 1] = nick
      end
    end
  end
  return out
elseif op == 'rooms' then
  -- ARGV: the most rooms to return. Returns name, members, ... of the rooms
  -- that have people on live nodes; rooms nobody is in are forgotten.
  local max = tonumber(A[1])
  local out = {}
  for _, k in ipairs(redis.call('HKEYS', 'tt:rooms')) do
    local sets = {}
    for _, n in ipairs(redis.call('SMEMBERS', 'tt:room:' .. k .. ':nodes')) do
      if alive(n) then
        sets[#sets + 1] = 'tt:room:' .. k .. ':node:' .. n
      end
    end
    local count = #sets > 0 and #redis.call('SUNION', unpack(sets)) or 0
    if count == 0 then
      redis.call('HDEL', 'tt:rooms', k)
    elseif #out < 2 * max then
      out[#out + 1] = redis.call('HGET', 'tt:rooms', k)
      out[#out + 1] = count
    end
  end
  return out
elseif op == 'reap' then
  -- ARGV: a lost node, ts, the grace time (ms). Its shares of people end in
  -- every room (node_lost: a person no other node has there leaves it), its
  -- claims end (drop_node). Once: a second caller finds nothing to do.
  local dead, ts, grace = A[1], A[2], tonumber(A[3] or '0')
  if alive(dead) or redis.call('SREM', 'tt:nodes', dead) == 0 then
    return 0
  end
  drop_node(dead, ts, grace)
  return 1
elseif op == 'restate_room' then
  -- ARGV: room key, node, ts, the room's spelling, then every nickname the
  -- node has in the room now. After its link was lost (what it told
  -- meanwhile is lost too), the node's share set becomes that: a P+ for
  -- each one added, a P- (disconnect) for each one gone.
  local k, node, ts = A[1], A[2], A[3]
  local set = 'tt:room:' .. k .. ':node:' .. node
  local want = {}
  for i = 5, #A do
    want[A[i]] = true
  end
  for _, nick in ipairs(redis.call('SMEMBERS', set)) do
    if want[nick] then
      want[nick] = nil
    else
      redis.call('SREM', set, nick)
      redis.call('PUBLISH', chan .. k, 'P- ' .. node .. ' ' .. nick .. ' disconnect ' .. ts)
    end
  end
  for i = 5, #A do
    if want[A[i]] then
      want[A[i]] = nil
      redis.call('SADD', set, A[i])
      redis.call('PUBLISH', chan .. k, 'P+ ' .. node .. ' ' .. A[i] .. ' ' .. ts)
    end
  end
  if redis.call('SCARD', set) > 0 then
    redis.call('HSETNX', 'tt:rooms', k, A[4])
    redis.call('SADD', 'tt:room:' .. k .. ':nodes', node)
    redis.call('SADD', 'tt:node:' .. node .. ':rooms', k)
  end
  return 1
elseif op == 'restate_rooms' then
  -- ARGV: node, ts, then the keys of every room the node has people in
  -- (restate_room told each): its shares in any other room end
  -- (disconnect).
  local node, ts = A[1], A[2]
  local keep = {}
  for i = 3, #A do
    keep[A[i]] = true
  end
  local rooms = 'tt:node:' .. node .. ':rooms'
  for _, k in ipairs(redis.call('SMEMBERS', rooms)) do
    if not keep[k] then
      drop_share(k, node, 'disconnect', ts)
      redis.call('SREM', rooms, k)
    end
  end
  return 1
elseif op == 'restate_nicks' then
  -- ARGV: node, then folded nick, kind ('g' or 'a') and a guest's resume
  -- token hash ('-': none) of every user the node has. Its other claims
  -- end (released while its link was lost); one it lost (it was reaped
  -- meanwhile) is taken again unless another node took it since: returns
  -- 1 + how many were (two people now have that nickname).
  local node = A[1]
  local have = {}
  for i = 2, #A, 3 do
    have[A[i]] = true
  end
  local mine = 'tt:node:' .. node .. ':nicks'
  for _, nick in ipairs(redis.call('SMEMBERS', mine)) do
    if not have[nick] then
      redis.call('HDEL', 'tt:nick:' .. nick, node)
      redis.call('SREM', mine, nick)
      if redis.call('EXISTS', 'tt:nick:' .. nick) == 0 then
        redis.call('DEL', 'tt:nickh:' .. nick)
      end
    end
  end
  local clashes = 0
  for i = 2, #A, 3 do
    local nick, kind, hash = A[i], A[i + 1], A[i + 2]
    local key = 'tt:nick:' .. nick
    if redis.call('HEXISTS', key, node) == 0 then
      local taken = false
      -- The same guest, resumed on another node meanwhile, is no clash.
      local same = kind == 'g' and hash ~= '-' and redis.call('GET', 'tt:nickh:' .. nick) == hash
      local holders = redis.call('HGETALL', key)
      for j = 1, #holders, 2 do
        local other = holders[j] ~= node and alive(holders[j])
        if other and (kind == 'g' or holders[j + 1] == 'g') and not (same and holders[j + 1] == 'g') then
          taken = true
        end
      end
      if taken then
        clashes = clashes + 1
      else
        redis.call('HSET', key, node, kind)
        redis.call('SADD', mine, nick)
        redis.call('DEL', 'tt:nickp:' .. nick)
        if kind == 'g' and hash ~= '-' then
          redis.call('SET', 'tt:nickh:' .. nick, hash)
        end
      end
    end
  end
  return 1 + clashes
elseif op == 'restart' then
  -- ARGV: node, ts, the grace time (ms). The node starts (its first lease
  -- of this process, sent before it): what an earlier process under its
  -- name held ends as if that one was reaped, lease or not.
  drop_node(A[1], A[2], tonumber(A[3] or '0'))
  return 1
end
return redis.error_reply('TT_OP unknown operation')
