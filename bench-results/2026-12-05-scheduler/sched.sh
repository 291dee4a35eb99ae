#!/bin/bash
set -u
B=/work/main/build; W=/tmp/w; mkdir -p $W; O=/tmp/out
uname -r > $O/kernel
cpu_ticks() { awk '/^cpu /{t=0; for (i=2;i<=9;i++) t+=$i; print t-$5-$6, t; exit}' /proc/stat; }
runfio() { # dev tag
  local c0 c1; c0=$(cpu_ticks)
  timeout 60 fio --name=j --filename=$1 --ioengine=io_uring --direct=1 --time_based --runtime=${RT:-4} \
    --norandommap --randrepeat=0 --rw=${RW:-randread} --bs=${BS:-4k} --iodepth=${QD:-32} --output-format=json --output=$W/f.json >/dev/null 2>&1
  c1=$(cpu_ticks)
  python3 - "$W/f.json" "$c0" "$c1" "$2" <<'PY' >> $O/res.txt
import json,sys
j=json.load(open(sys.argv[1]))['jobs'][0]
io=j['read']['total_ios']+j['write']['total_ios']; iops=j['read']['iops']+j['write']['iops']
b0,t0=map(int,sys.argv[2].split()); b1,t1=map(int,sys.argv[3].split())
us=(b1-b0)*1e6/100/io
p50=j['read']['clat_ns']['percentile'].get('50.000000',0)/1000 if j['read']['total_ios'] else 0
print(f"{sys.argv[4]:34s} iops {iops:8.0f} cpu/io {us:6.1f}us busy {100*(b1-b0)/(t1-t0):3.0f}% p50 {p50:.0f}us")
PY
}
truncate -s 512M $W/f.img
L=$(losetup -f --show --direct-io=on $W/f.img)
echo "loop sched: $(cat /sys/block/${L#/dev/}/queue/scheduler)" >> $O/res.txt
dd if=/dev/zero of=$L bs=1M count=512 oflag=direct status=none
start() { # conf tag bin
  $3 -c $1 > $W/n.out 2>$W/n.err & P=$!
  for i in $(seq 100); do D=$(grep -m1 -oE '^/dev/ublkb[0-9]+' $W/n.out); [ -n "$D" ] && break; sleep 0.2; done
}
for rep in 1 2; do
  for j in "randread 32" "randread 1" "randwrite 32"; do set -- $j
    RW=$1 QD=$2 runfio $L "loop $1 qd$2"
  done
  for v in null file; do
    { echo "device = { queues = 1; depth = 128; max_io = \"1M\"; block_size = 4096; };"
      if [ $v = null ]; then echo 'volume = { type = "null"; size = "512M"; };'; else echo "volume = { type = \"file\"; path = \"$L\"; };"; fi; } > $W/n.conf
    bin=$B/ublk-compose; [ $v = null ] && bin=$B/ucbench-null
    start $W/n.conf $v $bin
    S=/sys/block/${D#/dev/}/queue/scheduler
    [ $rep = 1 ] && echo "$v default sched: $(cat $S)" >> $O/res.txt
    for s in mq-deadline none; do
      echo $s > $S
      for j in "randread 32" "randread 1" "randwrite 32"; do set -- $j
        RW=$1 QD=$2 runfio $D "$v $s $1 qd$2"
      done
    done
    kill $P; wait $P
  done
done
losetup -d $L
