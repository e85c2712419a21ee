//! The tunasync worker: config, scheduler, job pipeline (arrives with its issue).
