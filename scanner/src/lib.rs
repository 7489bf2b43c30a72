//! The leak scanner (SPEC §6). Knows nothing about the server or HTTP.
