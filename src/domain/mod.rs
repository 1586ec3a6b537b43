//! Types that parse their input: once a value of one of these exists it is valid,
//! so handlers and services never re-validate.

mod bcrypt_hash;
mod credits;
mod email;
mod integer;
mod password;
mod text;
mod username;

pub use bcrypt_hash::{check_bcrypt_hash, MAX_BCRYPT_COST, MIN_BCRYPT_COST};
pub use credits::{Credits, MAX_CREDITS_CENTS};
pub use email::Email;
pub use integer::{json_int, JsonInt};
pub use password::{Password, MAX_PASSWORD_CHARS};
pub use text::is_storable;
pub use username::Username;
