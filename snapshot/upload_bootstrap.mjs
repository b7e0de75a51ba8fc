// piscina loads this file in its worker thread when statefn runs from its TypeScript sources:
// register tsx's loader there, then hand piscina the task (compiled runs load upload_task.js).
import { register } from 'tsx/esm/api';

register();
const mod = await import('./upload_task.ts');
export default mod.default;
