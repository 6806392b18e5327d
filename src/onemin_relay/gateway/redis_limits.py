"""The rate-limit counts in Redis, shared by every relay process on every host.

One Lua script per admission reads every window and in-flight set the request is subject to
and, only if all have room, counts it in all of them; Redis runs a script alone, so this is
exact under any concurrency. One more, when the request ends, leaves the in-flight sets and
corrects the token estimate. The time is Redis's own. Keys (under the configured prefix):
``rl:<subject>:<window index>`` counters that expire after two windows, and ``if:<subject>``
sorted sets of requests in flight scored by the end of their lease (a crashed process's
entries age out). Meant for a standalone Redis (keys are built inside the script).
"""

from __future__ import annotations

import redis.asyncio as redis

from onemin_relay.gateway.limit_store import Admission, Cap, Window, judge

_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local w, lease, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local nw = tonumber(ARGV[4])
local idx = math.floor(now / w)
local el = now - idx * w
local out = {0, 0, 0, idx, tostring(el)}
local refused = 0
for i = 1, nw do
  local p = tonumber(redis.call('GET', KEYS[i] .. ':' .. (idx - 1)) or '0')
  local c = tonumber(redis.call('GET', KEYS[i] .. ':' .. idx) or '0')
  out[#out + 1] = p
  out[#out + 1] = c
  local limit, cost = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])
  if refused == 0 and p * (w - el) / w + c + cost > limit then refused = i end
end
out[2] = refused
if refused > 0 then return out end
for j = 1, #KEYS - nw do
  local key, cap = KEYS[nw + j], tonumber(ARGV[4 + 2 * nw + j])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= cap then
    out[3] = j
    return out
  end
end
for i = 1, nw do
  local key = KEYS[i] .. ':' .. idx
  redis.call('INCRBY', key, tonumber(ARGV[4 + 2 * i]))
  redis.call('EXPIRE', key, math.ceil(2 * w) + 1)
end
for j = 1, #KEYS - nw do
  redis.call('ZADD', KEYS[nw + j], now + lease, member)
  redis.call('EXPIRE', KEYS[nw + j], math.ceil(lease) + 1)
end
out[1] = 1
return out
"""

_FINISH = """
local member, delta, nw = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nw do
  if delta ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], delta) < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
for j = nw + 1, #KEYS do redis.call('ZREM', KEYS[j], member) end
return 1
"""

_ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return 1
"""


class RedisLimitStore:
    def __init__(self, client: redis.Redis, *, window: float, prefix: str = "onemin:") -> None:
        self._client = client
        self._window = window
        self._prefix = prefix
        self._admit = client.register_script(_ADMIT)
        self._adjust = client.register_script(_ADJUST)
        self._finish = client.register_script(_FINISH)

    async def admit(
        self, windows: list[Window], caps: list[Cap], member: str, lease: float
    ) -> Admission:
        keys = [self._window_key(w.subject) for w in windows]
        keys += [self._cap_key(c.subject) for c in caps]
        args: list[str | int | float] = [self._window, lease, member, len(windows)]
        for check in windows:
            args += [check.limit, check.cost]
        args += [cap.limit for cap in caps]
        reply = await self._admit(keys=keys, args=args)
        return self._read(reply, windows)

    async def adjust(self, subject: str, window_index: int, delta: int) -> None:
        if delta:
            key = f"{self._window_key(subject)}:{window_index}"
            await self._adjust(keys=[key], args=[delta])

    async def finish(
        self, caps: list[Cap], member: str, corrections: list[str], window_index: int, delta: int
    ) -> None:
        windows = [f"{self._window_key(s)}:{window_index}" for s in corrections] if delta else []
        keys = windows + [self._cap_key(cap.subject) for cap in caps]
        if keys:
            await self._finish(keys=keys, args=[member, delta, len(windows)])

    async def release(self, caps: list[Cap], member: str) -> None:
        if caps:
            async with self._client.pipeline(transaction=False) as pipe:
                for cap in caps:
                    pipe.zrem(self._cap_key(cap.subject), member)
                await pipe.execute()

    def _read(self, reply: list[object], windows: list[Window]) -> Admission:
        _, refused, full, index = (int(str(v)) for v in reply[:4])
        elapsed = float(_text(reply[4]))
        counts = [
            (float(str(reply[5 + 2 * i])), float(str(reply[6 + 2 * i])))
            for i in range(len(windows))
        ]
        return judge(
            windows,
            counts,
            elapsed,
            self._window,
            index,
            refused - 1 if refused else None,
            full - 1 if full else None,
        )

    def _window_key(self, subject: str) -> str:
        return f"{self._prefix}rl:{subject}"

    def _cap_key(self, subject: str) -> str:
        return f"{self._prefix}if:{subject}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
