#!/bin/sh
# ab.sh runs BIN -c CONF: the same config with device.spin_us = 200
sed "s/block_size = 4096;/block_size = 4096; spin_us = 200;/" "$2" > "$2.spin"
exec /work/spin-bin/uc-head -c "$2.spin"
