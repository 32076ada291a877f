//! The development issuer's one hard rule — it serves loopback addresses only — and the error
//! type of starting and running it.

use std::net::SocketAddr;

use gatehouse::jws::KeyError;

/// Why the development issuer could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// A configuration value is invalid; `key` names it.
    #[error("invalid dev-issuer configuration `{key}`: {why}")]
    Config {
        /// The offending configuration key.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// The listener is bound to a non-loopback address.
    #[error(
        "refusing to serve on {0}: the development issuer binds loopback addresses only \
         (127.0.0.1 or ::1)"
    )]
    NotLoopback(SocketAddr),
    /// The signing key could not be generated or loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Returns the listener's address if it is a loopback address, otherwise an error.
pub fn ensure_loopback(listener: &tokio::net::TcpListener) -> Result<SocketAddr, DevIssuerError> {
    let addr = listener.local_addr()?;
    check_loopback(addr)
}

fn check_loopback(addr: SocketAddr) -> Result<SocketAddr, DevIssuerError> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(DevIssuerError::NotLoopback(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_check() {
        assert!(check_loopback("127.0.0.1:1".parse().unwrap()).is_ok());
        assert!(check_loopback("[::1]:1".parse().unwrap()).is_ok());
        for a in ["0.0.0.0:1", "192.168.1.2:1", "[::]:1", "10.0.0.1:80"] {
            assert!(
                matches!(
                    check_loopback(a.parse().unwrap()),
                    Err(DevIssuerError::NotLoopback(_))
                ),
                "{a}"
            );
        }
    }
}
