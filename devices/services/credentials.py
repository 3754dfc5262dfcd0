"""Device tokens: issued once, stored as SHA-256, revocable, and cheap to check on every heartbeat.

A token resolves to a `DeviceIdentity`. With Redis the resolution is cached (one GET instead of a
database query on the hot path) and revoking deletes the cache entry, so a revoked token is refused on
the very next request. Without Redis nothing is cached: several web processes would not hear of a
revocation made in another.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audit import services as audit
from coffeeshop.redis import (
    REDIS_OUTAGE_ERRORS,
    HotScript,
    delete_matching,
    get_redis,
    key,
    outage_tolerated,
    redis_failed,
)
from devices.models import Device, DeviceCredential

TOKEN_CACHE_TTL_S = 600


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: int
    merchant_id: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_cache_key(token_hash: str) -> str:
    """Redis: the cached "device_id:merchant_id" of an active token."""
    return key("devtok", token_hash)


def request_counter_key(token_hash: str, window_s: int) -> str:
    """Redis: how many requests the token made in the current fixed window of `window_s` seconds."""
    return key("rate", "device", token_hash[:32], int(time.time() // window_s))


def issue_token(device: Device) -> str:
    """Revoke the machine's current token and return a new one (the only time it is ever readable)."""
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        revoke_tokens(device)
        DeviceCredential.objects.create(device=device, token_hash=hash_token(token), token_prefix=token[:8])
    return token


@transaction.atomic
def revoke_tokens(device: Device) -> int:
    """Revoke every active token of the machine; returns how many were revoked."""
    active = list(DeviceCredential.objects.select_for_update().filter(device=device, revoked_at__isnull=True))
    if not active:
        return 0
    DeviceCredential.objects.filter(pk__in=[c.pk for c in active]).update(revoked_at=timezone.now())
    redis = get_redis()
    if redis is not None:
        hashes = [token_cache_key(c.token_hash) for c in active]
        transaction.on_commit(lambda: _forget_cached(redis, hashes))
    return len(active)


def _forget_cached(redis, names: list[str]) -> None:
    with outage_tolerated():  # missed: every cached token is forgotten when Redis answers again
        redis.delete(*names)


def forget_cached_tokens(redis) -> None:
    """When Redis answers again after an outage (a recovery hook): a token revoked meanwhile may still be
    cached there, so the cache starts empty and fills again from PostgreSQL."""
    delete_matching(redis, key("devtok", "*"))


@transaction.atomic
def rotate_device_token(device: Device) -> str:
    """Staff issue a new token (shown once); the machine's old one stops working at once."""
    token = issue_token(device)
    audit.record("device.token_rotated", device, changes={"token_prefix": token[:8]})
    return token


@transaction.atomic
def revoke_device_token(device: Device) -> int:
    """Staff cut a machine off until it re-registers with its merchant's provisioning secret."""
    revoked = revoke_tokens(device)
    audit.record("device.token_revoked", device, changes={"revoked": revoked})
    return revoked


def identify_device(token: str) -> DeviceIdentity | None:
    """The machine an active token belongs to, or None for an unknown or revoked token."""
    token_hash = hash_token(token)
    redis = get_redis()
    try:
        cached = redis.get(token_cache_key(token_hash)) if redis is not None else None
    except REDIS_OUTAGE_ERRORS as error:
        redis_failed(error)
        redis = cached = None
    if cached:
        device_id, merchant_id = cached.split(b":")
        return DeviceIdentity(int(device_id), int(merchant_id))
    row = (
        DeviceCredential.objects.filter(token_hash=token_hash, revoked_at__isnull=True)
        .values_list("device_id", "device__merchant_id")
        .first()
    )
    if row is None:
        return None
    if redis is not None:
        with outage_tolerated():
            redis.set(token_cache_key(token_hash), f"{row[0]}:{row[1]}", ex=TOKEN_CACHE_TTL_S)
    return DeviceIdentity(*row)


def identify_device_and_count(token: str, window_s: int) -> tuple[DeviceIdentity | None, int | None]:
    """`identify_device`, plus (with Redis) how many requests this token made in the current window of
    `window_s` seconds, counting this one: the machine throttle's input, in the same round trip as the
    token look-up. Without Redis (or while it is out) the count is None and the throttle counts for
    itself."""
    redis = get_redis()
    if redis is None:
        return identify_device(token), None
    token_hash = hash_token(token)
    counter = request_counter_key(token_hash, window_s)
    pipe = redis.pipeline(transaction=False)
    pipe.get(token_cache_key(token_hash))
    pipe.incr(counter)
    pipe.expire(counter, window_s * 2)
    try:
        cached, count, _ = pipe.execute()
    except REDIS_OUTAGE_ERRORS as error:
        redis_failed(error)
        return identify_device(token), None
    if not cached:
        return identify_device(token), count
    device_id, merchant_id = cached.split(b":")
    return DeviceIdentity(int(device_id), int(merchant_id)), count


def identity_of(device_id: int) -> DeviceIdentity | None:
    """Used only when device tokens are disabled (ENABLE_DEVICE_TOKEN=false): trust the path's id."""
    merchant_id = Device.objects.filter(pk=device_id).values_list("merchant_id", flat=True).first()
    return None if merchant_id is None else DeviceIdentity(device_id, merchant_id)


# One round trip for a request on a quiet lane (a lone order): the token must be cached for this very
# machine and the machine under its rate, else 0 and nothing counted (the full path then counts it).
# Otherwise the request is counted and the answer is the machine's merchant id.
_CLAIM_QUIET_REQUEST = """
local who = redis.call('GET', KEYS[1])
local colon = who and string.find(who, ':', 1, true)
if not colon or string.sub(who, 1, colon - 1) ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 0 end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return tonumber(string.sub(who, colon + 1))
"""
_CLAIM_QUIET_REQUEST_SCRIPT = HotScript(_CLAIM_QUIET_REQUEST)


def claim_quiet_request(token: str, device_id: str, rate: tuple[int, int]) -> DeviceIdentity | None:
    """The machine `token` proves, with the request counted against `rate` (requests, per seconds), when
    the token is active and cached for `device_id` and the machine is under its rate; None, having
    counted nothing, when the full path must take the request (or Redis is absent or out)."""
    redis = get_redis()
    if redis is None:
        return None
    limit, window_s = rate
    token_hash = hash_token(token)
    keys = (token_cache_key(token_hash), request_counter_key(token_hash, window_s))
    try:
        merchant_id = _CLAIM_QUIET_REQUEST_SCRIPT(redis, keys, (device_id, limit, window_s * 2))
    except REDIS_OUTAGE_ERRORS as error:
        redis_failed(error)
        return None
    return DeviceIdentity(int(device_id), merchant_id) if merchant_id else None


def release_quiet_request(token: str, rate: tuple[int, int]) -> None:
    """Uncount a claimed request that the full path takes after all (it counts it again)."""
    redis = get_redis()
    if redis is not None:
        with outage_tolerated():
            redis.decr(request_counter_key(hash_token(token), rate[1]))
