import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files made by openssl for one test: a CA, a server certificate and a client certificate it signed. */
export interface TestPki {
  dir: string;
  /** Paths. */
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A second CA and a client certificate from it (one the first CA does not vouch for). */
  otherClientCert: string;
  otherClientKey: string;
  read(path: string): Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ca(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
}

function leaf(dir: string, name: string, issuer: string, ext: string): void {
  openssl(dir, ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n${ext}\n`);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
}

/**
 * Makes a CA, a server certificate for localhost and 127.0.0.1, and client certificates (one from
 * the CA, one from another CA) with `openssl` in `dir` (a new temp folder by default). Two days
 * valid, EC P-256: generated in well under a second.
 */
export function makeTestPki(dir = mkdtempSync(join(tmpdir(), 'pki-'))): TestPki {
  ca(dir, 'ca');
  ca(dir, 'other-ca');
  leaf(dir, 'server', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  leaf(dir, 'client', 'ca', 'subjectAltName=DNS:prometheus.example,URI:spiffe://example/prometheus\nextendedKeyUsage=clientAuth');
  leaf(dir, 'other-client', 'other-ca', 'subjectAltName=DNS:intruder.example\nextendedKeyUsage=clientAuth');
  const p = (f: string) => join(dir, f);
  return {
    dir,
    caCert: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherClientCert: p('other-client.crt'),
    otherClientKey: p('other-client.key'),
    read: (path) => readFileSync(path),
  };
}
