//! The tunasync manager: store, event ingestion, HTTPS API (arrives with its issue).
