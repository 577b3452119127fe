//! The single table's one key rule every feature shares: everything a user owns — profile, sessions, orders,
//! broker connections, connector links, datasets, models, strategies, runs — lives in the user's partition
//! `USER#<uuid>`, under a sort key its feature chooses (each feature's `store` module lists its own).

use uuid::Uuid;

/// The partition key of everything `id` owns.
pub fn user_pk(id: Uuid) -> String {
    format!("USER#{id}")
}
