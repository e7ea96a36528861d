#!/bin/sh
# trickle-load reading its streams through reqwest, the goose user's client
# (the path of https://, proxied hosts and a goose scenario's default
# Reading::GooseClient) instead of its own HTTP/1.1 reader: a proxy is set,
# so the own reader does not apply, and bypassed for loopback. For
# bench/client_cost.py --also goose-client=bench/clients/trickle-load-via-reqwest.sh
HTTP_PROXY=http://127.0.0.1:9 NO_PROXY=127.0.0.1,localhost \
  exec "${TRICKLE_LOAD:-$(dirname "$0")/../../target/release/trickle-load}" "$@"
