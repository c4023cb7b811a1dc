import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { contractSuite, type Backend } from './contract.js';

contractSuite({
  name: 'the wire double',
  canDropConnections: true,
  canSetSystemParameters: true,
  async open(): Promise<Backend> {
    const double: MaterializeDouble = await startMaterializeDouble();
    return {
      url: double.url,
      defineView: (name, columns, rows = []) => {
        double.defineView(name, columns, rows);
        return Promise.resolve();
      },
      insert: (view, rows) => {
        double.insert(view, rows);
        return Promise.resolve();
      },
      remove: (view, rows) => {
        double.remove(view, rows);
        return Promise.resolve();
      },
      dropConnections: () => double.dropConnections(),
      forgetHistory: (view) => {
        double.compact(view, double.upper);
        return Promise.resolve();
      },
      setSystemParameter: (name, value) => {
        if (name === 'max_connections') {
          double.setLimits({ maxConnections: value ?? Number.POSITIVE_INFINITY });
        } else {
          double.setLimits({ subscribeMaxBufferedBytes: value ?? 128 * 1024 * 1024 });
        }
        return Promise.resolve();
      },
      close: () => double.stop(),
    };
  },
});
