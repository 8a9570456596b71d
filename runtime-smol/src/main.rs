mod probe;

fn main() {
    let _ = probe::run;
}
