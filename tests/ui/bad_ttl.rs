use vhs::Model;

#[derive(Model, serde::Serialize, serde::Deserialize)]
struct Session {
    #[vhs(hash_key, ttl)]
    pk: String,
    #[vhs(ttl)]
    expires: u64,
    #[vhs(ttl)]
    again: Option<i64>,
    #[large]
    #[vhs(ttl)]
    body: Option<Vec<u8>>,
}

#[derive(Model, serde::Serialize, serde::Deserialize)]
struct WrongType {
    #[vhs(hash_key)]
    pk: String,
    #[vhs(ttl)]
    expires: String,
}

fn main() {}
