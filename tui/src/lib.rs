//! `belter-tui`, the on-call console for `belterd`. It talks only to the daemon's control socket,
//! through `belter_common::client::ControlClient`.
//!
//! The shape follows the usual ratatui application: `App` is plain state, `keymap` turns keys
//! into an `Action`, `update` applies an action and returns `Command`s that `daemon_link` runs
//! in the background, and `render` draws `&App` without changing it.

pub mod action;
pub mod app;
pub mod badge;
pub mod cli;
pub mod command;
pub mod daemon_link;
pub mod demo;
pub mod event_loop;
pub mod filter;
pub mod format;
pub mod json_pretty;
pub mod keymap;
pub mod logging;
pub mod render;
pub mod rule_line;
pub mod terminal;
pub mod theme;
pub mod update;

#[cfg(test)]
mod fixtures;
