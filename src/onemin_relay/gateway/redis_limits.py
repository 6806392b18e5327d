"""The rate-limit counts in Redis, shared by every relay process on every host.

A Lua script reads every window and in-flight set a request is subject to and, only if all
have room, counts it in all of them; Redis runs a script alone, so this is exact under any
concurrency. When a request ends, the same script leaves its in-flight sets and corrects its
token estimate. Admissions and ends that arrive while a call is out share the next
(``GroupCommit``): one round trip and one run for the lot, ends first, then each admission
decided in turn, as if alone; under load that is most of the cost per request gone
(redis-py's machinery, not Redis, is the cost of a call). An end waits up to ``END_LINGER``
for an admission to ride with, so one request after another (no overlap to share) costs one
call each, not two. The time is Redis's own. Keys (under the configured prefix):
``rl:<subject>:<window index>`` counters that expire after two windows, and ``if:<subject>``
sorted sets of requests in flight scored by the end of their lease (a crashed process's
entries age out). Meant for a standalone Redis (keys are built inside the script).
"""

from __future__ import annotations

from typing import NamedTuple

import redis.asyncio as redis

from onemin_relay.gateway.group_commit import GroupCommit
from onemin_relay.gateway.limit_store import Admission, Cap, Window, judge

MAX_BATCH = 256  # ends and admissions per script call: Redis runs a script alone, keep it short
# How long a request's end may wait for an admission to share its script call. Another
# process may see the in-flight slot taken this much longer; this one applies it before its
# next admission (which takes the waiting ends along, applied first).
END_LINGER = 0.01

# Requests that ended, then admissions in order, each as it would be alone. ARGV: the count
# of ends, per end: member, delta, nw, nc; then window, the count of admissions, per
# admission: lease, member, nw, nc, nw x (limit, cost), nc x cap. KEYS: per end, nw window
# keys (with their index) to correct by delta, then nc in-flight keys; per admission, nw
# window keys (without their index) then nc in-flight keys. Per admission the reply holds:
# admitted, refused window, full cap, window index, elapsed, then nw x (previous, current).
_END_AND_ADMIT = """
local k, a = 0, 1
for _ = 1, tonumber(ARGV[1]) do
  local member, delta = ARGV[a + 1], tonumber(ARGV[a + 2])
  local nw, nc = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  for i = 1, nw do
    if delta ~= 0 and redis.call('EXISTS', KEYS[k + i]) == 1 then
      if redis.call('INCRBY', KEYS[k + i], delta) < 0 then
        redis.call('SET', KEYS[k + i], 0, 'KEEPTTL')
      end
    end
  end
  for j = 1, nc do redis.call('ZREM', KEYS[k + nw + j], member) end
  k, a = k + nw + nc, a + 4
end
local w, count = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
a = a + 2
local out = {}
if count == 0 then return out end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local idx = math.floor(now / w)
local el = now - idx * w
for _ = 1, count do
  local lease, member = tonumber(ARGV[a + 1]), ARGV[a + 2]
  local nw, nc = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local head = #out
  out[head + 1], out[head + 2], out[head + 3] = 0, 0, 0
  out[head + 4], out[head + 5] = idx, tostring(el)
  local refused, full = 0, 0
  for i = 1, nw do
    local p = tonumber(redis.call('GET', KEYS[k + i] .. ':' .. (idx - 1)) or '0')
    local c = tonumber(redis.call('GET', KEYS[k + i] .. ':' .. idx) or '0')
    out[#out + 1] = p
    out[#out + 1] = c
    local limit, cost = tonumber(ARGV[a + 3 + 2 * i]), tonumber(ARGV[a + 4 + 2 * i])
    if refused == 0 and p * (w - el) / w + c + cost > limit then refused = i end
  end
  if refused == 0 then
    for j = 1, nc do
      local key, cap = KEYS[k + nw + j], tonumber(ARGV[a + 4 + 2 * nw + j])
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
      if full == 0 and redis.call('ZCARD', key) >= cap then full = j end
    end
  end
  if refused == 0 and full == 0 then
    for i = 1, nw do
      local key = KEYS[k + i] .. ':' .. idx
      redis.call('INCRBY', key, tonumber(ARGV[a + 4 + 2 * i]))
      redis.call('EXPIRE', key, math.ceil(2 * w) + 1)
    end
    for j = 1, nc do
      redis.call('ZADD', KEYS[k + nw + j], now + lease, member)
      redis.call('EXPIRE', KEYS[k + nw + j], math.ceil(lease) + 1)
    end
    out[head + 1] = 1
  end
  out[head + 2], out[head + 3] = refused, full
  k, a = k + nw + nc, a + 4 + 2 * nw + nc
end
return out
"""

_ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return 1
"""


class _Admit(NamedTuple):
    windows: list[Window]
    caps: list[Cap]
    member: str
    lease: float


class _Finish(NamedTuple):
    windows: list[str]  # keys, with their window index
    caps: list[str]  # keys
    member: str
    delta: int


class RedisLimitStore:
    def __init__(self, client: redis.Redis, *, window: float, prefix: str = "onemin:") -> None:
        self._client = client
        self._window = window
        self._prefix = prefix
        self._script = client.register_script(_END_AND_ADMIT)
        self._adjust = client.register_script(_ADJUST)
        # admissions and ends that arrive while a script call is out go together in the
        # next: one round trip and one script run for the lot, each still decided in turn;
        # an end waits a little for an admission to ride with
        self._calls: GroupCommit[_Admit | _Finish, Admission | None] = GroupCommit(
            self._run_all, max_batch=MAX_BATCH, urgent=_is_admission, linger=END_LINGER
        )

    async def admit(
        self, windows: list[Window], caps: list[Cap], member: str, lease: float
    ) -> Admission:
        admission = await self._calls.submit(_Admit(windows, caps, member, lease))
        assert admission is not None
        return admission

    async def adjust(self, subject: str, window_index: int, delta: int) -> None:
        if delta:
            key = f"{self._window_key(subject)}:{window_index}"
            await self._adjust(keys=[key], args=[delta])

    async def finish(
        self, caps: list[Cap], member: str, corrections: list[str], window_index: int, delta: int
    ) -> None:
        windows = [f"{self._window_key(s)}:{window_index}" for s in corrections] if delta else []
        keys = [self._cap_key(cap.subject) for cap in caps]
        if windows or keys:
            await self._calls.submit(_Finish(windows, keys, member, delta))

    async def _run_all(self, batch: list[_Admit | _Finish]) -> list[Admission | None]:
        """One script call: the ends in the batch first (they free room), then the admissions
        in the order they came."""
        ends = [item for item in batch if isinstance(item, _Finish)]
        admits = [item for item in batch if isinstance(item, _Admit)]
        keys: list[str] = []
        args: list[str | int | float] = [len(ends)]
        for end in ends:
            keys += end.windows + end.caps
            args += [end.member, end.delta, len(end.windows), len(end.caps)]
        args += [self._window, len(admits)]
        for item in admits:
            keys += [self._window_key(w.subject) for w in item.windows]
            keys += [self._cap_key(c.subject) for c in item.caps]
            args += [item.lease, item.member, len(item.windows), len(item.caps)]
            for check in item.windows:
                args += [check.limit, check.cost]
            args += [cap.limit for cap in item.caps]
        reply = await self._script(keys=keys, args=args)
        decided = iter(self._read_all(reply, admits))
        return [next(decided) if isinstance(item, _Admit) else None for item in batch]

    def _read_all(self, reply: list[object], admits: list[_Admit]) -> list[Admission]:
        admissions, at = [], 0
        for item in admits:
            size = 5 + 2 * len(item.windows)  # this admission's part of the reply
            admissions.append(self._read(reply[at : at + size], item.windows))
            at += size
        return admissions

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


def _is_admission(item: _Admit | _Finish) -> bool:
    return isinstance(item, _Admit)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
