// Scratch driver: reads SQL statements from stdin (one per line) and prints results.
use std::io::BufRead;
fn main() {
    let mut e = ohm::sql::Engine::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        if line.trim().is_empty() {
            continue;
        }
        match e.execute(&line) {
            Ok(r) => println!("{line}\n  => {r:?}"),
            Err(err) => println!("{line}\n  !! {err}"),
        }
    }
}
