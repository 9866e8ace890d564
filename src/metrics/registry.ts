/**
 * Metrics in the Prometheus text format (version 0.0.4), kept deliberately small: counters, gauges and
 * histograms with fixed label names. Label values are chosen by code (rule names, hooks, states),
 * never taken from requests, so no user or tenant id can become a label.
 */

type Labels = Record<string, string>;

const NO_LABELS: Labels = Object.freeze({});

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: readonly string[], extra = ''): string {
  const parts = names.map((name, i) => `${name}="${escapeLabel(values[i]!)}"`);
  if (extra) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function formatNumber(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return Number.isNaN(value) ? 'NaN' : String(value);
}

interface Metric {
  readonly name: string;
  render(): string;
}

/** What a registry hands out, and takes back by identity (remove()). */
export type RegisteredMetric = Counter | Gauge | Histogram;

interface Registration {
  metric: Metric;
  /** The registry object it was registered through (the root, or a plugin instance's scope()). */
  via: MetricsRegistry;
}

/** Series keyed by their label values, in a fixed order. */
abstract class Family<S> implements Metric {
  /** Every series, in the order it first appeared (the order they are rendered in). */
  protected readonly series: { values: string[]; state: S }[] = [];
  /**
   * Series by label value, one level per label name: a labelled series is found with one map lookup
   * per label, without building an array and a joined key (whose hashing was most of the cost of
   * counting a reply).
   */
  private readonly index = new Map<string, unknown>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly type: string,
  ) {}

  private unlabelled: S | undefined;

  protected at(labels: Labels): S {
    // A family without labels has one series: found without building a key.
    if (this.labelNames.length === 0 && this.unlabelled !== undefined) return this.unlabelled;
    const names = this.labelNames;
    let level = this.index;
    for (let i = 0; i < names.length - 1; i++) {
      const value = labels[names[i]!] ?? '';
      let next = level.get(value) as Map<string, unknown> | undefined;
      if (next === undefined) level.set(value, (next = new Map()));
      level = next;
    }
    const last = names.length === 0 ? '' : (labels[names[names.length - 1]!] ?? '');
    let entry = level.get(last) as { values: string[]; state: S } | undefined;
    if (entry === undefined) {
      entry = { values: names.map((n) => labels[n] ?? ''), state: this.initial() };
      level.set(last, entry);
      this.series.push(entry);
    }
    if (names.length === 0) this.unlabelled = entry.state;
    return entry.state;
  }

  /** Every series with its label values, for code that shows them other than as Prometheus text. */
  protected each(): { labels: Labels; state: S }[] {
    return this.series.map(({ values, state }) => ({
      labels: Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!])),
      state,
    }));
  }

  protected abstract initial(): S;
  protected abstract lines(values: string[], state: S): string[];

  render(): string {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const { values, state } of this.series) out.push(...this.lines(values, state));
    return out.join('\n');
  }
}

export class Counter extends Family<{ value: number }> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames, 'counter');
    // An unlabelled counter is served as 0 from the start, so rate() and increase() see its first rise.
    if (labelNames.length === 0) this.at(NO_LABELS);
  }
  inc(labels: Labels = {}, by = 1): void {
    this.at(labels).value += by;
  }
  get(labels: Labels = {}): number {
    return this.at(labels).value;
  }
  /** Every series' value with its labels. */
  values(): { labels: Labels; value: number }[] {
    return this.each().map(({ labels, state }) => ({ labels, value: state.value }));
  }
  /** One series, for callers that count it often: inc() on it builds no label key. */
  child(labels: Labels): { inc(by?: number): void } {
    const state = this.at(labels);
    return { inc: (by = 1) => void (state.value += by) };
  }
  protected initial() {
    return { value: 0 };
  }
  protected lines(values: string[], state: { value: number }): string[] {
    return [`${this.name}${labelText(this.labelNames, values)} ${formatNumber(state.value)}`];
  }
}

/** A gauge read when scraped (store size, breaker state), so nothing updates it on the hot path. */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${formatNumber(this.read())}`].join(
      '\n',
    );
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Family<HistogramState> {
  constructor(
    name: string,
    help: string,
    /** Upper bounds, ascending; +Inf is implied. */
    private readonly buckets: readonly number[],
    labelNames: readonly string[] = [],
  ) {
    super(name, help, labelNames, 'histogram');
  }
  observe(value: number, labels?: Labels): void {
    const state = this.at(labels ?? NO_LABELS);
    state.sum += value;
    state.count++;
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]!) {
        state.counts[i]!++;
        return;
      }
    }
  }
  /** The sum and count of every observation, over all series. */
  totals(): { sum: number; count: number } {
    let sum = 0;
    let count = 0;
    for (const { state } of this.each()) {
      sum += state.sum;
      count += state.count;
    }
    return { sum, count };
  }
  protected initial(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }
  protected lines(values: string[], state: HistogramState): string[] {
    const out: string[] = [];
    let cumulative = 0;
    this.buckets.forEach((bound, i) => {
      cumulative += state.counts[i]!;
      out.push(`${this.name}_bucket${labelText(this.labelNames, values, `le="${formatNumber(bound)}"`)} ${cumulative}`);
    });
    out.push(`${this.name}_bucket${labelText(this.labelNames, values, 'le="+Inf"')} ${state.count}`);
    out.push(`${this.name}_sum${labelText(this.labelNames, values)} ${formatNumber(state.sum)}`);
    out.push(`${this.name}_count${labelText(this.labelNames, values)} ${state.count}`);
    return out;
  }
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Every metric the gateway and its plugins expose at GET /metrics. A plugin instance registers
 * through its own scope(), so that on reload its next instance (started before the old one stops)
 * may register the same names: the first registration of a name is served, the next one waits for
 * it to be removed.
 */
export class MetricsRegistry {
  private readonly table: Map<string, Registration[]>;
  /** What was registered through this object, for clear(). */
  private readonly mine = new Set<Metric>();

  constructor(
    private readonly owner?: string,
    shared?: MetricsRegistry,
  ) {
    this.table = shared?.table ?? new Map();
  }

  /** The same registry as one plugin instance sees it (what it registers is its own; see clear()). */
  scope(owner: string): MetricsRegistry {
    return new MetricsRegistry(owner, this);
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(name, new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, read: () => number): Gauge {
    return this.add(name, new Gauge(name, help, read));
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.add(name, new Histogram(name, help, buckets, labelNames));
  }

  /**
   * Drops this very metric (its owner is torn down); another registered under the same name since,
   * a new instance's, stays. A metric already removed is ignored.
   */
  remove(target: RegisteredMetric): void {
    const list = this.table.get(target.name);
    if (list === undefined) return;
    const kept = list.filter((r) => {
      const gone = r.metric === target;
      if (gone) r.via.mine.delete(r.metric);
      return !gone;
    });
    if (kept.length === 0) this.table.delete(target.name);
    else this.table.set(target.name, kept);
  }

  /** Removes every metric registered through this object (the plugin instance stopped, or never started). */
  clear(): void {
    for (const metric of [...this.mine]) this.remove(metric as RegisteredMetric);
  }

  /** The text exposition format, one family after another. */
  render(): string {
    return `${[...this.table.values()].map((list) => list[0]!.metric.render()).join('\n')}\n`;
  }

  private add<M extends Metric>(name: string, metric: M): M {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    const list = this.table.get(name);
    // Only another instance of the same plugin may queue behind a name: anything else is a clash.
    if (list !== undefined && (this.owner === undefined || list.some((r) => r.via === this || r.via.owner !== this.owner))) {
      throw new Error(`metric ${name} is already registered`);
    }
    this.table.set(name, [...(list ?? []), { metric, via: this }]);
    this.mine.add(metric);
    return metric;
  }
}
