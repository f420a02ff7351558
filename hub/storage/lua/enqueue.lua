-- ENQUEUE: arq's enqueue_job as one script (hub/queue.py), so that queueing shares a round
-- trip with other writes. Same keys, same serialized job, same rule: nothing is queued
-- while a job or a kept result with that id exists.
-- KEYS: job key, result key, queue, then optionally sets that, all holding nothing but
-- ARGV[5], mean the job would have nothing to do.
-- ARGV: expiry ms, serialized job, score, job id, the member the sets may hold only,
-- again ('1': a kept result of an earlier run does not stop it, it is deleted).
-- Returns 1 (queued), 0 (a job or kept result with that id exists) or 2 (nothing to do).
if #KEYS > 3 then
  local idle = true
  for i = 4, #KEYS do
    if redis.call('SCARD', KEYS[i]) ~= 1 or redis.call('SISMEMBER', KEYS[i], ARGV[5]) == 0 then
      idle = false
      break
    end
  end
  if idle then return 2 end
end
if redis.call('EXISTS', KEYS[1]) > 0 then return 0 end
if ARGV[6] == '1' then
  redis.call('DEL', KEYS[2])
elseif redis.call('EXISTS', KEYS[2]) > 0 then
  return 0
end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
