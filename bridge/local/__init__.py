"""Tools for trying convo-bridge on one machine, off the production path: `dev` (everything
at once), the embedded Redis server, and the Convocore sandbox."""
