#!/usr/bin/env bash
# Makes the certificates of a tunasync cluster with openssl.
#
#   certs/mkcerts.sh ca     DIR                      root CA: DIR/ca.crt, DIR/ca.key
#   certs/mkcerts.sh host   DIR NAME HOST...         host certificate for servers (broker, manager
#                                                    HTTPS): DIR/NAME.crt, DIR/NAME.key; HOST is a
#                                                    DNS name or an IP address, each one a SAN
#   certs/mkcerts.sh client DIR NAME                 client certificate with CN = NAME (a worker id,
#                                                    the broker user it logs in as with EXTERNAL)
#
# host and client use the CA in DIR (made first with `ca`). Keys are PKCS#8 PEM, which the
# broker (Erlang), rustls and lapin all read. Existing files are never overwritten.
set -euo pipefail

usage() { sed -n '2,12p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
mkdir -p "$dir"
command -v openssl >/dev/null || { echo "mkcerts.sh: openssl is missing (apt-get install openssl)" >&2; exit 1; }
days=${CERT_DAYS:-3650}

refuse_existing() {
  for f in "$@"; do
    if [ -e "$f" ]; then echo "mkcerts.sh: $f exists; not overwriting it" >&2; exit 1; fi
  done
}

need_ca() {
  [ -f "$dir/ca.crt" ] && [ -f "$dir/ca.key" ] || { echo "mkcerts.sh: no CA in $dir: run '$0 ca $dir' first" >&2; exit 1; }
}

# The request config: v3_req with keyUsage, extendedKeyUsage and (for hosts) subjectAltName.
write_req_cnf() { # FILE CN USAGE [SAN...]
  local file=$1 cn=$2 usage=$3
  shift 3
  {
    echo "[req]"
    echo "distinguished_name = dn"
    echo "req_extensions = v3_req"
    echo "prompt = no"
    echo "[dn]"
    echo "CN = $cn"
    echo "[v3_req]"
    echo "basicConstraints = CA:FALSE"
    echo "keyUsage = critical, digitalSignature, keyEncipherment"
    echo "extendedKeyUsage = $usage"
    if [ $# -gt 0 ]; then
      echo "subjectAltName = @alt_names"
      echo "[alt_names]"
      local n_dns=0 n_ip=0 h
      for h in "$@"; do
        if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then
          n_ip=$((n_ip + 1)); echo "IP.$n_ip = $h"
        else
          n_dns=$((n_dns + 1)); echo "DNS.$n_dns = $h"
        fi
      done
    fi
  } >"$file"
}

sign() { # NAME CN USAGE [SAN...]
  local name=$1
  need_ca
  refuse_existing "$dir/$name.crt" "$dir/$name.key"
  write_req_cnf "$dir/$name.req.cnf" "$2" "$3" "${@:4}"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$dir/$name.key" \
    -config "$dir/$name.req.cnf" -out "$dir/$name.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days "$days" -extfile "$dir/$name.req.cnf" -extensions v3_req -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr"
  chmod 600 "$dir/$name.key"
  echo "$dir/$name.crt"
}

case $cmd in
  ca)
    refuse_existing "$dir/ca.crt" "$dir/ca.key"
    openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=${CA_NAME:-tunasync-ca}" \
      -keyout "$dir/ca.key" -out "$dir/ca.crt" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    chmod 600 "$dir/ca.key"
    echo "$dir/ca.crt"
    ;;
  host)
    [ $# -ge 2 ] || usage
    name=$1; shift
    sign "$name" "$1" serverAuth "$@"
    ;;
  client)
    [ $# -eq 1 ] || usage
    sign "$1" "$1" clientAuth
    ;;
  *) usage ;;
esac
