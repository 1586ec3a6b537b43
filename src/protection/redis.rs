//! Counters in Redis, shared by every instance. Each operation is one script call, so
//! concurrent instances cannot interleave inside it.

use redis::aio::ConnectionManager;
use redis::Script;

use super::{
    LOGIN_BASE_DELAY_MS, LOGIN_FAILURE_THRESHOLD, LOGIN_FAILURE_WINDOW_MS, MAX_LOGIN_DELAY_MS,
};

pub struct RedisCounters {
    connection: ConnectionManager,
    hit: Script,
    failed: Script,
}

impl RedisCounters {
    pub async fn connect(url: &str) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(std::time::Duration::from_secs(2))
            .set_response_timeout(std::time::Duration::from_secs(2))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            hit: Script::new(
                r"local n = redis.call('INCR', KEYS[1])
                  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
                  return n",
            ),
            failed: Script::new(
                r"local n = redis.call('INCR', KEYS[1])
                  if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
                  local threshold = tonumber(ARGV[2])
                  if n < threshold then return 0 end
                  local delay = math.min(tonumber(ARGV[3]) * 2 ^ (n - threshold), tonumber(ARGV[4]))
                  redis.call('SET', KEYS[2], '1', 'PX', math.floor(delay))
                  return math.floor(delay)",
            ),
        })
    }

    pub async fn hit(&self, key: &str, ttl_ms: u64) -> redis::RedisResult<u32> {
        let mut conn = self.connection.clone();
        self.hit.key(key).arg(ttl_ms).invoke_async(&mut conn).await
    }

    pub async fn blocked_for_ms(&self, block_key: &str) -> redis::RedisResult<u64> {
        let mut conn = self.connection.clone();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(block_key)
            .query_async(&mut conn)
            .await?;
        Ok(ttl.max(0) as u64)
    }

    pub async fn failed(&self, count_key: &str, block_key: &str) -> redis::RedisResult<u64> {
        let mut conn = self.connection.clone();
        self.failed
            .key(count_key)
            .key(block_key)
            .arg(LOGIN_FAILURE_WINDOW_MS)
            .arg(LOGIN_FAILURE_THRESHOLD)
            .arg(LOGIN_BASE_DELAY_MS)
            .arg(MAX_LOGIN_DELAY_MS)
            .invoke_async(&mut conn)
            .await
    }

    pub async fn succeeded(&self, count_key: &str, block_key: &str) -> redis::RedisResult<()> {
        let mut conn = self.connection.clone();
        redis::cmd("DEL")
            .arg(count_key)
            .arg(block_key)
            .query_async(&mut conn)
            .await
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut conn = self.connection.clone();
        redis::cmd("PING").query_async(&mut conn).await
    }
}
