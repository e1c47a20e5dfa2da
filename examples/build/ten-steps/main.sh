#!/bin/sh
if [ "$1" = selftest ]; then echo "selftest ok"; exit 0; fi
echo "app $(cat /app/VERSION) $(cat /app/data/status) $(cat /app/conf/app.conf)"
