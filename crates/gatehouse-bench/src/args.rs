//! `--name value` arguments, nothing more.

/// The value after `--name` on the command line, if present.
pub fn get(name: &str) -> Option<String> {
    let flag = format!("--{name}");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == flag {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
            return Some(v.to_owned());
        }
    }
    None
}

/// The value after `--name`, or an error naming the missing flag.
pub fn required(name: &str) -> anyhow::Result<String> {
    get(name).ok_or_else(|| anyhow::anyhow!("missing --{name}"))
}

/// The value after `--name` parsed, or `default` when absent.
pub fn parsed<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e| anyhow::anyhow!("--{name} {v:?}: {e}")),
    }
}
