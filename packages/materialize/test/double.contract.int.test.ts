import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { contractSuite, type Backend } from './contract.js';

contractSuite({
  name: 'the wire double',
  canDropConnections: true,
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
      close: () => double.stop(),
    };
  },
});
