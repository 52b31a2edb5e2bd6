#!/bin/bash
# The compose stack's Kafka (the official apache/kafka image, KRaft, one combined node) with the
# same SASL/SCRAM + ACL setup as `jax-exec kafka start --secure` (jax_exec/kafka_security.py):
#
# - every KAFKA_<NAME> variable of the service becomes the property <name> (as the image's own
#   start script does: KAFKA_LOG_DIRS -> log.dirs);
# - the credentials are the files `python -m jax_exec.kafka_compose credentials` writes
#   (JAX_HOME/kafka/credentials/<principal>.json), mounted as compose secrets kafka-<principal>;
# - every SASL client listener takes SCRAM-SHA-512 (and PLAIN, for old librdkafka) for every
#   principal; the controller listener takes PLAIN as admin only; the StandardAuthorizer denies
#   what no ACL allows; admin is the super user. The ACLs themselves are created by the
#   kafka-setup service (jax_exec/kafka_compose.py), as admin, once the broker serves;
# - the storage is formatted once, with a SCRAM user per principal (users exist at first start).
#
# JAX_KAFKA_RENDER_ONLY=1 prints the properties and exits (tests compare them with
# jax_exec.kafka_security.secure_properties). KAFKA_BIN overrides /opt/kafka/bin.
set -euo pipefail

SECRETS=${JAX_KAFKA_SECRETS:-/run/secrets}
CONFIG=${JAX_KAFKA_CONFIG:-/tmp/jax-kafka/server.properties}
KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
MECHANISM=SCRAM-SHA-512
# variables of the image or the JVM, not broker properties
NOT_PROPERTIES=" KAFKA_HOME KAFKA_VERSION KAFKA_OPTS KAFKA_HEAP_OPTS KAFKA_LOG4J_OPTS KAFKA_JMX_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_DEBUG KAFKA_BIN KAFKA_CLUSTER_ID "

password() {  # the "password" field of a credentials file (token_urlsafe: [A-Za-z0-9_-])
  sed -n 's/.*"password": *"\([A-Za-z0-9_-]*\)".*/\1/p' "$1"
}

declare -A PASSWORDS=()
for file in "$SECRETS"/kafka-*.json "$SECRETS"/kafka-*; do
  [ -f "$file" ] || continue
  name=${file##*/kafka-}
  name=${name%.json}
  [ -n "${PASSWORDS[$name]:-}" ] && continue
  PASSWORDS[$name]=$(password "$file")
  [ -n "${PASSWORDS[$name]}" ] || { echo "no password in $file" >&2; exit 2; }
done
[ -n "${PASSWORDS[admin]:-}" ] || { echo "no admin credentials in $SECRETS (kafka-admin)" >&2; exit 2; }
ADMIN=${PASSWORDS[admin]}

render() {
  local var key
  while IFS='=' read -r var _; do
    case "$NOT_PROPERTIES" in *" $var "*) continue ;; esac
    key=$(echo "${var#KAFKA_}" | tr '[:upper:]' '[:lower:]' | tr '_' '.')
    echo "$key=${!var}"
  done < <(env | grep -E '^KAFKA_[A-Z0-9_]+=' | sort)
  local users="" name
  for name in $(printf '%s\n' "${!PASSWORDS[@]}" | sort); do
    users+=" user_${name}=\"${PASSWORDS[$name]}\""
  done
  echo "# SASL/SCRAM and ACLs (deploy/kafka/compose-kafka.sh)"
  echo "sasl.enabled.mechanisms=$MECHANISM,PLAIN"
  echo "sasl.mechanism.inter.broker.protocol=$MECHANISM"
  echo "sasl.mechanism.controller.protocol=PLAIN"
  echo "listener.name.controller.sasl.enabled.mechanisms=PLAIN"
  echo "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$ADMIN\" user_admin=\"$ADMIN\";"
  # every SASL listener but the controller's: SCRAM for every principal, PLAIN likewise
  local listener lower
  for listener in $(echo "${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP:?}" | tr ',' '\n' | sed -n 's/^\([A-Za-z0-9_]*\):SASL_.*/\1/p'); do
    [ "$listener" = "CONTROLLER" ] && continue
    lower=$(echo "$listener" | tr '[:upper:]' '[:lower:]')
    echo "listener.name.$lower.$(echo $MECHANISM | tr '[:upper:]' '[:lower:]').sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$ADMIN\";"
    echo "listener.name.$lower.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$users;"
  done
  echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
  echo "super.users=User:admin"
  echo "allow.everyone.if.no.acl.found=false"
}

if [ "${JAX_KAFKA_RENDER_ONLY:-}" = "1" ]; then
  render
  exit 0
fi

mkdir -p "$(dirname "$CONFIG")"
umask 077  # the file holds every password
render > "$CONFIG"
# the healthcheck's login (kafka-broker-api-versions.sh --command-config)
cat > "$(dirname "$CONFIG")/admin.properties" <<EOF
security.protocol=SASL_PLAINTEXT
sasl.mechanism=$MECHANISM
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN";
EOF

data=${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS is required}
if [ ! -f "$data/meta.properties" ]; then
  scram=()
  for name in "${!PASSWORDS[@]}"; do
    scram+=(--add-scram "$MECHANISM=[name=$name,password=${PASSWORDS[$name]}]")
  done
  cluster=${KAFKA_CLUSTER_ID:-$("$KAFKA_BIN"/kafka-storage.sh random-uuid)}
  "$KAFKA_BIN"/kafka-storage.sh format -t "$cluster" -c "$CONFIG" --standalone "${scram[@]}"
fi
exec "$KAFKA_BIN"/kafka-server-start.sh "$CONFIG"
