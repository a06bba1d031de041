# CoAP clients we did not write, for the interoperability tests of the
# CoAP server and for benches/coap.sh: libcoap's coap-client (Debian
# libcoap3-bin; the OpenSSL build, which speaks coaps+tcp) and Python's
# aiocoap (aiocoap-client, and aiocoap-fileserver for the bench).
# Sourced by .ci/run; exports DMS_TEST_COAP_CLIENT and DMS_TEST_AIOCOAP_PYTHON.

coap_client=""
for candidate in coap-client-openssl coap-client-gnutls coap-client; do
    if command -v "$candidate" >/dev/null; then coap_client=$(command -v "$candidate"); break; fi
done
if [ -z "$coap_client" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libcoap3-bin >/dev/null
    coap_client=$(command -v coap-client-openssl || command -v coap-client || true)
fi
if [ -n "$coap_client" ]; then
    export DMS_TEST_COAP_CLIENT="$coap_client"
    echo "coap: $("$coap_client" 2>&1 | sed -n 2p) at $coap_client"
fi

coap_python=$(command -v python3 || true)
if [ -n "$coap_python" ] && ! "$coap_python" -c 'import aiocoap' 2>/dev/null; then
    "$coap_python" -m pip install -q aiocoap >/dev/null 2>&1 || true
fi
if [ -n "$coap_python" ] && "$coap_python" -c 'import aiocoap' 2>/dev/null; then
    export DMS_TEST_AIOCOAP_PYTHON="$coap_python"
    echo "coap: aiocoap $("$coap_python" -c 'import aiocoap.meta; print(aiocoap.meta.version)')"
fi
