//! Scaffolding: the files `init` writes and the repository `demo` builds.
