//! Supervisor ⇄ node wire protocol.
