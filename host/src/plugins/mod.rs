//! Plugins: packages, installation, bundled plugins and the registry of loaded ones.

pub mod bundled;
pub mod doctor;
pub mod installer;
pub mod lifecycle;
pub mod package;
pub mod registry;
pub mod sources;
pub mod trust;
