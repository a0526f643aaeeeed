use vhs::Model;

#[derive(Model)]
struct Document(String, Option<String>);

fn main() {}
