// MQTT.js over WebSocket, as a browser dashboard would use the broker: connect, subscribe,
// publish at QoS 1, and wait for the message to come back. Prints "ok" and exits 0 on success.
// usage: node roundtrip.js URL PROTOCOL_VERSION [CA_FILE]
const fs = require('fs');
const mqtt = require('mqtt');

const [url, version, caFile] = process.argv.slice(2);
const options = {
  protocolVersion: Number(version),
  clientId: `mqttjs-${version}-${process.pid}`,
  reconnectPeriod: 0,
  connectTimeout: 5000,
};
if (caFile) {
  options.ca = fs.readFileSync(caFile);
}
const topic = `js/${options.clientId}`;
const timer = setTimeout(() => {
  console.error('timed out');
  process.exit(1);
}, 5000);
const client = mqtt.connect(url, options);
client.on('error', (e) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
client.on('connect', () => {
  client.subscribe(topic, { qos: 1 }, (err) => {
    if (err) {
      console.error(`subscribe: ${err.message}`);
      process.exit(1);
    }
    client.publish(topic, 'hello from mqtt.js', { qos: 1 });
  });
});
client.on('message', (t, payload) => {
  if (t === topic && payload.toString() === 'hello from mqtt.js') {
    clearTimeout(timer);
    console.log('ok');
    client.end(false, () => process.exit(0));
  }
});
