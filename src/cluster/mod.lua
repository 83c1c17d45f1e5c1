-- tertulia's moderation sync: a page of the moderation state that the
-- store keeps in Redis (src/store/store_redis_mod.c names the keys), read
-- by a node that may have missed changes on the moderation channel: after
-- it subscribes, after its subscription came back, after a gap in the
-- changes' numbers.
--
-- ARGV[1] the SSCAN cursor of tt:mod:rooms ('0': the first page, which also
--         holds the change number now and the server-wide bans)
-- ARGV[2] now, in ms (ended bans are left out)
-- Returns one JSON object: {seq = the last change's number (first page),
-- cursor = the next cursor ('0': the last page), rooms = [{name, owner,
-- ops, topic, topic_by, topic_ts, bans = [...]}], sbans = [...]}, each ban
-- as the store keeps it: {t, a, u, ts, by, r}.
local now = tonumber(ARGV[2])
local function bans(key)
  local out, all = {}, redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local ok, b = pcall(cjson.decode, all[i + 1])
    if ok and type(b) == 'table' and (tonumber(b.u) == 0 or tonumber(b.u) > now) then
      out[#out + 1] = b
    end
  end
  return out
end
local page = {cursor = '0', rooms = {}, sbans = {}}
if ARGV[1] == '0' then
  page.seq = tonumber(redis.call('GET', 'tt:mod:seq') or '0')
  page.sbans = bans('tt:mod:sbans')
end
local r = redis.call('SSCAN', 'tt:mod:rooms', ARGV[1], 'COUNT', 100)
page.cursor = r[1]
for _, k in ipairs(r[2]) do
  local v = redis.call('HMGET', 'tt:mod:room:' .. k, 'name', 'owner', 'ops', 'topic',
                       'topic_by', 'topic_ts')
  if v[1] then
    page.rooms[#page.rooms + 1] = {name = v[1], owner = v[2] or '', ops = v[3] or '',
      topic = v[4] or '', topic_by = v[5] or '', topic_ts = v[6] or '0',
      bans = bans('tt:mod:bans:' .. k)}
  end
end
return cjson.encode(page)
