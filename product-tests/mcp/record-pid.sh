#!/bin/sh
# Appends its PID to the file named by MCP_PID_FILE, then becomes the command it is given
# (exec keeps the PID): the product tests count the MCP server processes the runtime starts.
echo $$ >> "$MCP_PID_FILE"
exec "$@"
