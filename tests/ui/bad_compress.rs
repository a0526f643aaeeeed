use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[large(compress = "lz4")]
    a: Option<String>,
    #[large(compress = zstd)]
    b: Option<Vec<u8>>,
    #[large(compress = "zstd", compress = "gzip")]
    c: Option<Vec<u8>>,
}

fn main() {}
