//! Counters in Redis, shared by every instance. Each operation is one script call, so
//! concurrent instances cannot interleave inside it.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;

use super::login::{LoginKeys, LoginPolicy};

pub struct RedisCounters {
    connection: ConnectionManager,
    hit: Script,
    reserve: Script,
    release: Script,
}

/// Checks both blocks, then counts the attempt against the name-and-address pair and the
/// name; a count at or past its threshold blocks further attempts for the progressive
/// delay. Returns {wait_ms, epoch}: wait_ms > 0 means blocked (nothing counted).
const RESERVE: &str = r"
local epoch = redis.call('GET', KEYS[1]) or '0'
local pair = ARGV[1] .. epoch .. ':' .. ARGV[2]
local pair_block = pair .. ':b'
local wait = math.max(redis.call('PTTL', pair_block), redis.call('PTTL', KEYS[3]))
if wait > 0 then return {wait, epoch} end
local function count(key, block, threshold)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[3]) end
  if n >= threshold then
    local delay = math.min(tonumber(ARGV[6]) * 2 ^ (n - threshold), tonumber(ARGV[7]))
    redis.call('SET', block, '1', 'PX', math.floor(delay))
  end
end
count(pair, pair_block, tonumber(ARGV[4]))
count(KEYS[2], KEYS[3], tonumber(ARGV[5]))
return {0, epoch}";

/// A successful login: the pair starts afresh; the name gives back this attempt only.
const RELEASE: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
local n = tonumber(redis.call('GET', KEYS[3]) or '0')
if n > 0 then redis.call('DECR', KEYS[3]) end
return 1";

impl RedisCounters {
    pub async fn connect(url: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let client = if super::sentinel::is_sentinel_url(url) {
            super::sentinel::master_client(url).await?
        } else {
            redis::Client::open(url)?
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            hit: Script::new(
                r"local n = redis.call('INCR', KEYS[1])
                  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
                  return n",
            ),
            reserve: Script::new(RESERVE),
            release: Script::new(RELEASE),
        })
    }

    pub async fn hit(&self, key: &str, ttl_ms: u64) -> redis::RedisResult<u32> {
        let mut conn = self.connection.clone();
        self.hit.key(key).arg(ttl_ms).invoke_async(&mut conn).await
    }

    /// `(wait_ms, epoch)`: blocked when `wait_ms > 0`.
    pub async fn reserve_login(
        &self,
        keys: &LoginKeys,
        policy: &LoginPolicy,
    ) -> redis::RedisResult<(u64, String)> {
        let mut conn = self.connection.clone();
        let (wait, epoch): (i64, String) = self
            .reserve
            .key(&keys.epoch)
            .key(&keys.name)
            .key(&keys.name_block)
            .arg(&keys.pair_base)
            .arg(&keys.client)
            .arg(policy.window_ms)
            .arg(policy.pair_threshold)
            .arg(policy.name_ceiling)
            .arg(policy.base_delay_ms)
            .arg(policy.max_delay_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok((wait.max(0) as u64, epoch))
    }

    pub async fn release_login(&self, pair: &str, name: &str) -> redis::RedisResult<()> {
        let mut conn = self.connection.clone();
        let _: i64 = self
            .release
            .key(pair)
            .key(format!("{pair}:b"))
            .key(name)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Starts the name afresh: a new epoch for its pairs, its own count and block gone.
    pub async fn clear_login(
        &self,
        epoch_key: &str,
        name: &str,
        name_block: &str,
        epoch_ttl_ms: u64,
    ) -> redis::RedisResult<()> {
        let mut conn = self.connection.clone();
        redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(epoch_key)
            .ignore()
            .cmd("PEXPIRE")
            .arg(epoch_key)
            .arg(epoch_ttl_ms)
            .ignore()
            .cmd("DEL")
            .arg(name)
            .arg(name_block)
            .ignore()
            .query_async(&mut conn)
            .await
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.connection.clone();
        redis::cmd("PING").query_async(&mut conn).await
    }
}
