import { describe, expect, it } from 'vitest';
import { parseDownloadPaths, safeRemotePath } from '../../src/sources/intelepeer/client.js';
import { labelName } from '../../src/sources/intelepeer/config.js';
import { parseEventTime } from '../../src/sources/intelepeer/jobs.js';

describe('IntelePeer result sentence', () => {
  it('reads the download paths of a finished query: one or more, u prefix or not, either quote', () => {
    expect(parseDownloadPaths("Process finished. Download: [u'reports/a/b_QueryExport_1574700000000__000000000000.csv.gz']")).toEqual(['reports/a/b_QueryExport_1574700000000__000000000000.csv.gz']);
    expect(parseDownloadPaths("Process finished. Download: [u'reports/a/x__000000000000.csv.gz', u'reports/a/x__000000000001.csv.gz']")).toEqual(['reports/a/x__000000000000.csv.gz', 'reports/a/x__000000000001.csv.gz']);
    expect(parseDownloadPaths('Process finished. Download: ["reports/a.csv.gz",\'reports/b.csv.gz\']')).toEqual(['reports/a.csv.gz', 'reports/b.csv.gz']);
    expect(parseDownloadPaths("Process finished. Download: ['reports/it\\'s.csv.gz']")).toEqual(["reports/it's.csv.gz"]);
    expect(parseDownloadPaths('Process finished. Download: []')).toEqual([]);
  });

  it('finds none in a sentence without a list, or with a list it cannot read', () => {
    expect(parseDownloadPaths('Process has not finish yet, please verify the status of your request')).toBeUndefined();
    expect(parseDownloadPaths("Process finished. Download: [u'reports/a.csv.gz' u'reports/b.csv.gz']")).toBeUndefined();
    expect(parseDownloadPaths('Process finished. Download: [reports/a.csv.gz]')).toBeUndefined();
    expect(parseDownloadPaths("Process finished. Download: [u'reports/a.csv.gz'")).toBeUndefined();
  });

  it('opens only relative paths without .. or control characters on the SFTP server', () => {
    expect(safeRemotePath('reports/a/b.csv.gz')).toBe(true);
    for (const bad of ['', '/etc/passwd', '../x.csv.gz', 'reports/../../x', 'a\nb', 'a\u0000b', 'x'.repeat(1025)]) expect(safeRemotePath(bad), JSON.stringify(bad)).toBe(false);
  });
});

describe('IntelePeer fields', () => {
  it('become snake_case label names', () => {
    expect(['FlowName', 'ExitReason', 'IsTriggerAction', 'DTMFInput', 'TimeStamp', 'flow_name', 'CustomerId'].map(labelName)).toEqual(['flow_name', 'exit_reason', 'is_trigger_action', 'dtmf_input', 'time_stamp', 'flow_name', 'customer_id']);
  });

  it('time values: ISO 8601 with or without a zone (UTC then), or with a space; not anything else', () => {
    expect(parseEventTime('2026-11-23T20:00:05.123Z')).toBe(Date.UTC(2026, 10, 23, 20, 0, 5, 123));
    expect(parseEventTime('2026-11-23 20:00:05')).toBe(Date.UTC(2026, 10, 23, 20, 0, 5));
    expect(parseEventTime('2026-11-23T21:00:05+01:00')).toBe(Date.UTC(2026, 10, 23, 20, 0, 5));
    for (const bad of ['', 'yesterday', '1732392005', '2026-13-45T99:00:00Z', '2026-11-23']) expect(parseEventTime(bad), bad).toBeUndefined();
  });
});
