// The planner map (see tiles/deck.py): deck.gl layers of the zones, communities and
// districts, a legend, a date slider with replay, a rule picker, a search box, layer toggles,
// a loading indicator and the residents under each level.
//
// Everything it needs comes in the page's <script type="application/json" id="map-config">
// block. Two sources of data:
//   - "tiles" (the page at GET /): riskmap's vector tiles (MVTLayer), the status, search and
//     population routes of the same server;
//   - "embedded" (riskmap export map): the communities and districts once, the zones and the
//     level of every community per day, inside the file (no network at all).
// Values from the data are only ever shown as text (textContent, deck.gl's text tooltips).
(function () {
  "use strict";

  const cfg = JSON.parse(document.getElementById("map-config").textContent);
  const $ = (id) => document.getElementById(id);
  const DAY_MS = 86400000;
  const TILED = cfg.source === "tiles";
  // a large city's communities are drawn from this zoom (the server's choice: a few thousand
  // a tile); below it their tiles would hold the whole city, and the zones are filled instead
  const COMMUNITIES_MIN_ZOOM = (TILED && cfg.minzoom && cfg.minzoom.communities) || 0;
  const PREFETCH_DAYS = 3; // the next days' tiles fetched ahead while replaying
  const PLAY_STEP_MS = 700; // at most one day per step, and only once the day has drawn
  const TILE_CACHE = 800; // tiles kept in memory (prefetched or drawn)

  // ---- dates (ISO strings, UTC days) --------------------------------------------------------
  const toDate = (s) => new Date(s + "T00:00:00Z");
  const iso = (d) => d.toISOString().slice(0, 10);
  const addDays = (s, n) => iso(new Date(toDate(s).getTime() + n * DAY_MS));
  const daysBetween = (a, b) => Math.round((toDate(b) - toDate(a)) / DAY_MS);
  const number = (n) => (n === null || n === undefined ? "" : Math.round(n).toLocaleString("en"));

  const state = {
    rule: cfg.rules.find((r) => r.id === cfg.rule) || cfg.rules[0],
    at: cfg.at,
    visible: {
      basemap: true,
      communities: true,
      zones: true,
      districts: true,
      hotspots: false,
      alerts: false,
    },
    playing: false,
    coarse: (cfg.view.zoom || 0) < COMMUNITIES_MIN_ZOOM, // zoomed out below the communities
    current: null, // {key, layers}: the layers of the rule and date asked for
    previous: null, // the layers shown until the current ones have loaded
    districtLabels: [],
    labelZoom: Math.floor(cfg.view.zoom || 0), // the whole zoom the district names are chosen for
    shownLabels: null, // {zoom, data}: the names wide enough to show at labelZoom
  };

  // ---- messages -----------------------------------------------------------------------------
  function showMessage(text) {
    const box = $("message");
    box.textContent = text;
    box.hidden = false;
  }
  function clearMessage() {
    $("message").hidden = true;
    $("message").textContent = "";
  }
  // riskmap answers errors as JSON ({"detail": "..."} or FastAPI's list of {loc, msg});
  // the page shows them as a sentence, never the JSON itself
  function readableDetail(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((e) => {
          if (!e || typeof e !== "object") return String(e);
          const where = Array.isArray(e.loc) ? e.loc.filter((p) => p !== "query").join(".") : "";
          return where ? `${where}: ${e.msg}` : String(e.msg);
        })
        .join("; ");
    }
    return "";
  }
  async function errorText(resp) {
    let detail = "";
    try {
      const body = await resp.json();
      detail = readableDetail(body && body.detail !== undefined ? body.detail : body);
    } catch (e) {
      detail = "";
    }
    const what = resp.status >= 500 ? "the server could not answer" : "the request was refused";
    return `${what} (${resp.status})${detail ? ": " + detail : ""}`;
  }
  async function getJSON(url) {
    let resp;
    try {
      resp = await fetch(url, { headers: { Accept: "application/json" } });
    } catch (e) {
      throw new Error("the server could not be reached");
    }
    if (!resp.ok) throw new Error(await errorText(resp));
    return resp.json();
  }

  // ---- colours ------------------------------------------------------------------------------
  function fillOf(rule) {
    const byRank = new Map([[0, rule.none.fill]]);
    for (const lv of rule.levels) byRank.set(lv.rank, lv.fill);
    return (rank) => byRank.get(rank) || rule.none.fill;
  }
  const labelOf = (rule, rank) =>
    rank ? (rule.levels.find((l) => l.rank === rank) || rule.none).label : rule.none.label;
  const cssColor = (rgba) => `rgba(${rgba[0]}, ${rgba[1]}, ${rgba[2]}, ${rgba[3] / 255})`;

  // ---- tiles: fetched once, kept, prefetched ------------------------------------------------
  const tiles = new Map(); // url -> Promise<ArrayBuffer | null> (null: 204, no feature)
  function getTile(url) {
    let got = tiles.get(url);
    if (got) {
      tiles.delete(url); // most recently used last
      tiles.set(url, got);
      return got;
    }
    got = fetch(url).then(async (resp) => {
      if (resp.status === 204) return null;
      if (!resp.ok) throw new Error(await errorText(resp));
      return resp.arrayBuffer();
    });
    got.catch(() => tiles.delete(url)); // a failed tile is asked again next time
    tiles.set(url, got);
    while (tiles.size > TILE_CACHE) tiles.delete(tiles.keys().next().value);
    return got;
  }
  // Tiles reach the map together: the bytes of a tile wait until every tile asked for with it
  // has come (at most BATCH_MS), so that the map draws them all in one frame, not one frame
  // per tile (a frame of a large city takes a software renderer the better part of a second)
  const BATCH_MS = 1500;
  let batch = null; // the tiles asked for since the last batch was handed over
  function endBatch(b) {
    clearTimeout(b.timer);
    if (batch === b) batch = null;
    b.release();
  }
  function batched(promise) {
    if (!batch) {
      const b = { pending: 0 };
      b.ready = new Promise((resolve) => (b.release = resolve));
      b.timer = setTimeout(() => endBatch(b), BATCH_MS);
      batch = b;
    }
    const b = batch;
    b.pending++;
    const settled = () => {
      if (--b.pending === 0) endBatch(b);
    };
    promise.then(settled, settled);
    return promise.then(
      (value) => b.ready.then(() => value),
      (err) => b.ready.then(() => Promise.reject(err)),
    );
  }
  // MVTLayer's fetch: the tile's bytes from getTile, decoded here (decodeTile below) into
  // GeoJSON features in the coordinates the layer asks for. deck.gl's bundled MVT loader only
  // runs in a web worker whose script it would fetch from a CDN.
  async function fetchTile(url, { loadOptions, signal }) {
    const bytes = await batched(getTile(url));
    if (bytes === null || (signal && signal.aborted)) return null;
    return decodeTile(new Uint8Array(bytes), loadOptions.mvt || {});
  }
  function tileURL(name, rule, at) {
    const path = location.origin + cfg.tiles[name];
    if (name === "districts") return path;
    return `${path}?policy=${encodeURIComponent(rule.id)}&at=${at}`;
  }
  function prefetch(from, days) {
    const layer = state.current && state.current.layers.find((l) => l.id.startsWith("zones"));
    const tileset = layer && layer.state && layer.state.tileset;
    if (!tileset) return;
    for (let i = 1; i <= days; i++) {
      const at = addDays(from, i);
      if (at > state.rule.last) break;
      for (const tile of tileset.selectedTiles || []) {
        const { x, y, z } = tile.index;
        const names = z >= COMMUNITIES_MIN_ZOOM ? ["communities", "zones"] : ["zones"];
        for (const name of names) {
          const url = tileURL(name, state.rule, at)
            .replace("{z}", z)
            .replace("{x}", x)
            .replace("{y}", y);
          getTile(url).catch(() => {});
        }
      }
    }
  }

  // ---- Mapbox Vector Tiles (spec 2.1): protobuf messages, geometry commands -----------------
  // Tile {3: Layer*}; Layer {1: name, 2: Feature*, 3: keys*, 4: Value*, 5: extent};
  // Feature {1: id, 2: tags (packed), 3: type, 4: geometry (packed)}.
  class Protobuf {
    constructor(bytes, start = 0, end = bytes.length) {
      this.buf = bytes;
      this.pos = start;
      this.end = end;
    }
    varint() {
      let result = 0;
      let shift = 1;
      for (;;) {
        const b = this.buf[this.pos++];
        result += (b & 0x7f) * shift;
        if (b < 0x80) return result;
        shift *= 128;
      }
    }
    // each field: fn(tag, wireType, this); a field fn leaves unread is skipped
    fields(fn) {
      while (this.pos < this.end) {
        const key = this.varint();
        const tag = Math.floor(key / 8);
        const type = key & 7;
        const at = this.pos;
        const next = type === 2 ? this.varint() + this.pos : null;
        if (type === 2) {
          const bodyStart = this.pos;
          fn(tag, type, new Protobuf(this.buf, bodyStart, next));
          this.pos = next;
        } else {
          fn(tag, type, this);
          if (this.pos === at) this.skip(type);
        }
      }
    }
    skip(type) {
      if (type === 0) this.varint();
      else if (type === 1) this.pos += 8;
      else if (type === 5) this.pos += 4;
      else throw new Error(`vector tile: unexpected wire type ${type}`);
    }
    string() {
      return new TextDecoder().decode(this.buf.subarray(this.pos, this.end));
    }
    packed() {
      const out = [];
      while (this.pos < this.end) out.push(this.varint());
      return out;
    }
    view(n) {
      const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, n);
      this.pos += n;
      return v;
    }
  }
  const zigzag = (n) => (n % 2 ? -(n + 1) / 2 : n / 2);

  function readValue(pb) {
    let value = null;
    pb.fields((tag, type, p) => {
      if (tag === 1) value = p.string();
      else if (tag === 2) value = p.view(4).getFloat32(0, true);
      else if (tag === 3) value = p.view(8).getFloat64(0, true);
      else if (tag === 4 || tag === 5) value = p.varint();
      else if (tag === 6) value = zigzag(p.varint());
      else if (tag === 7) value = Boolean(p.varint());
    });
    return value;
  }

  // the rings of a feature's geometry, in tile units
  function rings(commands) {
    const out = [];
    let ring = null;
    let x = 0;
    let y = 0;
    for (let i = 0; i < commands.length; ) {
      const cmd = commands[i] & 7;
      const count = commands[i] >> 3;
      i++;
      if (cmd === 7) {
        if (ring && ring.length) ring.push(ring[0].slice());
        continue;
      }
      for (let k = 0; k < count; k++) {
        x += zigzag(commands[i++]);
        y += zigzag(commands[i++]);
        if (cmd === 1) {
          ring = [];
          out.push(ring);
        }
        ring.push([x, y]);
      }
    }
    return out;
  }
  const signedArea = (ring) => {
    let sum = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      sum += (ring[j][0] - ring[i][0]) * (ring[i][1] + ring[j][1]);
    }
    return sum / 2;
  };

  function geometryOf(type, commands, project) {
    const parts = rings(commands).map((r) => r.map(project));
    if (type === 1) {
      const pts = parts.flat();
      return pts.length === 1 ? { type: "Point", coordinates: pts[0] } : { type: "MultiPoint", coordinates: pts };
    }
    if (type === 2) {
      return parts.length === 1
        ? { type: "LineString", coordinates: parts[0] }
        : { type: "MultiLineString", coordinates: parts };
    }
    // polygons: an exterior ring has a positive area in tile units (y down), holes follow it
    const raw = rings(commands);
    const polygons = [];
    raw.forEach((r, i) => {
      const area = signedArea(r);
      if (area === 0) return;
      if (area > 0 || !polygons.length) polygons.push([parts[i]]);
      else polygons[polygons.length - 1].push(parts[i]);
    });
    return polygons.length === 1
      ? { type: "Polygon", coordinates: polygons[0] }
      : { type: "MultiPolygon", coordinates: polygons };
  }

  // GeoJSON features of every layer of a tile; options as MVTLayer passes them (coordinates
  // "local": 0..1 across the tile, or "wgs84" with tileIndex {x, y, z}; layerProperty)
  function decodeTile(bytes, options) {
    const features = [];
    new Protobuf(bytes).fields((tag, type, layerPb) => {
      if (tag !== 3) return;
      const layer = { name: "", keys: [], values: [], extent: 4096, features: [] };
      layerPb.fields((t, w, p) => {
        if (t === 1) layer.name = p.string();
        else if (t === 2) layer.features.push(p);
        else if (t === 3) layer.keys.push(p.string());
        else if (t === 4) layer.values.push(readValue(p));
        else if (t === 5) layer.extent = p.varint();
      });
      const project = projection(options, layer.extent);
      for (const fpb of layer.features) {
        const f = { id: undefined, tags: [], type: 0, geometry: [] };
        fpb.fields((t, w, p) => {
          if (t === 1) f.id = p.varint();
          else if (t === 2) f.tags = p.packed();
          else if (t === 3) f.type = p.varint();
          else if (t === 4) f.geometry = p.packed();
        });
        const properties = {};
        for (let i = 0; i + 1 < f.tags.length; i += 2) {
          properties[layer.keys[f.tags[i]]] = layer.values[f.tags[i + 1]];
        }
        if (options.layerProperty) properties[options.layerProperty] = layer.name;
        features.push({
          type: "Feature",
          id: f.id,
          properties,
          geometry: geometryOf(f.type, f.geometry, project),
        });
      }
    });
    return features;
  }

  function projection(options, extent) {
    if (options.coordinates !== "wgs84") return ([x, y]) => [x / extent, y / extent];
    const { x: tx, y: ty, z } = options.tileIndex;
    const size = 2 ** z;
    return ([x, y]) => {
      const lon = ((tx + x / extent) / size) * 360 - 180;
      const n = Math.PI - (2 * Math.PI * (ty + y / extent)) / size;
      return [lon, (180 / Math.PI) * Math.atan(Math.sinh(n))];
    };
  }

  // ---- layers -------------------------------------------------------------------------------
  function commonProps(name) {
    return {
      visible: state.visible[name],
      pickable: name !== "districts",
      autoHighlight: name !== "districts",
      highlightColor: [0, 0, 0, 40],
    };
  }
  function styleOf(name, rule) {
    const fill = fillOf(rule);
    if (name === "communities") {
      // exact-geometry rules: the zones are filled, communities keep the "no zone" colour
      return {
        filled: true,
        stroked: true,
        getFillColor: rule.exact ? rule.none.fill : (f) => fill(f.properties.rank || 0),
        getLineColor: [255, 255, 255, 110],
        lineWidthMinPixels: 0.5,
      };
    }
    if (name === "zones") {
      return {
        // filled too where the communities are not drawn (zoomed out over a large city)
        filled: rule.exact || (TILED && state.coarse),
        // zoomed out over a large city the fills alone: thousands of outlines a pixel apart
        // show nothing more, and outlines are the slowest part of a frame to draw
        stroked: !(TILED && state.coarse),
        getFillColor: (f) => fill(f.properties.rank || 0),
        getLineColor: [40, 40, 40, 230],
        lineWidthMinPixels: 1.5,
      };
    }
    // district outlines: thinner zoomed out over a large city (lighter to look at and to draw)
    const width = TILED && state.coarse ? 1 : 2;
    return { filled: false, stroked: true, getLineColor: [20, 20, 120, 255], lineWidthMinPixels: width };
  }

  function tiledLayer(name, rule, at, key) {
    return new deck.MVTLayer({
      id: name === "districts" ? "districts" : `${name}-${key}`,
      data: tileURL(name, rule, at),
      minZoom: name === "communities" ? COMMUNITIES_MIN_ZOOM : 0, // no tile requested below
      maxZoom: 14,
      uniqueIdProperty: "id",
      maxRequests: 0, // every tile of a view asked for at once: they arrive as one batch
      binary: false, // fetchTile answers GeoJSON features
      fetch: fetchTile,
      loadOptions: { worker: false },
      onTileError: (err) => showMessage(`map tiles could not load: ${err.message || err}`),
      ...commonProps(name),
      ...styleOf(name, rule),
    });
  }

  function embeddedLayers(rule, at, key) {
    const data = cfg.data;
    const day = data.days[at];
    const fill = fillOf(rule);
    const communities = new deck.GeoJsonLayer({
      id: `communities-${key}`,
      data: data.communities,
      ...commonProps("communities"),
      ...styleOf("communities", rule),
      getFillColor: rule.exact ? rule.none.fill : (f, { index }) => fill(day.ranks[index]),
    });
    const zones = new deck.GeoJsonLayer({
      id: `zones-${key}`,
      data: day.zones.map((k) => data.zones[k]),
      ...commonProps("zones"),
      ...styleOf("zones", rule),
    });
    const districts = new deck.GeoJsonLayer({
      id: "districts",
      data: data.districts,
      ...commonProps("districts"),
      ...styleOf("districts", rule),
    });
    return [communities, zones, districts];
  }

  function labelsLayer() {
    return new deck.TextLayer({
      id: "district-names",
      data: shownLabels(),
      visible: state.visible.districts,
      getPosition: (d) => d.position,
      getText: (d) => d.name,
      characterSet: "auto",
      getSize: 13,
      getColor: [20, 20, 120, 255],
      outlineWidth: 2,
      outlineColor: [255, 255, 255, 220],
      fontSettings: { sdf: true },
    });
  }

  function basemapLayer() {
    return new deck.TileLayer({
      id: "basemap",
      data: cfg.basemap,
      minZoom: 0,
      maxZoom: 19,
      tileSize: 256,
      visible: state.visible.basemap,
      onTileError: () => showMessage("the base map's tiles could not load"),
      renderSubLayers: (props) => {
        const [[west, south], [east, north]] = props.tile.boundingBox;
        return new deck.BitmapLayer(props, {
          data: null,
          image: props.data,
          bounds: [west, south, east, north],
        });
      },
    });
  }

  function dayLayers(rule, at) {
    const key = `${rule.id}/${at}`;
    const layers = TILED
      ? ["communities", "zones", "districts"].map((n) => tiledLayer(n, rule, at, key))
      : embeddedLayers(rule, at, key);
    return { key, layers };
  }

  function redraw() {
    const below = cfg.basemap ? [basemapLayer()] : [];
    const prev = state.previous ? state.previous.layers.filter((l) => l.id !== "districts") : [];
    const layers = [...below, ...prev, ...state.current.layers, ...warningLayers(), labelsLayer()];
    map.setProps({ layers });
  }

  // the current layers have drawn: drop the previous ones, say so (window.__riskmapReady and
  // <body data-ready="rule/date">: tests and scripts wait for it)
  function afterRender() {
    const cur = state.current;
    if (!cur) return;
    const loaded = cur.layers.every((l) => !l.props.visible || l.isLoaded);
    $("loading").hidden = loaded;
    if (loaded && document.body.dataset.ready !== cur.key) {
      document.body.dataset.ready = cur.key;
      window.__riskmapReady = true;
      if (state.previous) {
        state.previous = null;
        setTimeout(redraw, 0);
      }
    } else if (!loaded && document.body.dataset.ready === cur.key) {
      delete document.body.dataset.ready; // panned to tiles not loaded yet
      window.__riskmapReady = false;
    }
  }

  // ---- early warning: the Gi* hotspots and scan alerts of the date shown (served map) --------
  // asked for when their toggle is on, once per date; without a key, alerts are answered for
  // today and the last report date only (the route says so: shown as a message)
  const warnings = { hotspots: { at: null, data: null }, alerts: { at: null, data: null } };
  const WARNING_NAMES = { hotspots: "hotspots", alerts: "scan alerts" };

  function alertFeatures(doc) {
    const features = (doc.alerts || []).map((a) => ({
      type: "Feature",
      geometry: a.geometry,
      properties: {
        id: a.id,
        center: a.center ? a.center.name || a.center.id : null,
        start: a.start,
        end: a.end,
        p_value: a.p_value,
        recurrence_days: a.recurrence_days,
        communities: (a.communities || []).length,
      },
    }));
    return { type: "FeatureCollection", features };
  }

  async function loadWarning(name) {
    const w = warnings[name];
    const at = state.at;
    if (!TILED || !state.visible[name] || w.at === at) return;
    w.at = at;
    w.data = null;
    const note = `${WARNING_NAMES[name]} of ${at}: computing\u2026`;
    showMessage(note);
    try {
      const body = await getJSON(`${cfg.api[name]}?at=${at}`);
      if (w.at !== at) return;
      w.data =
        name === "alerts"
          ? alertFeatures(body)
          : { type: "FeatureCollection", features: (body.features || []).filter((f) => f.properties.class !== "not significant") };
      if ($("message").textContent === note) clearMessage();
      document.body.dataset[`${name}Ready`] = `${at}:${w.data.features.length}`;
      redraw();
    } catch (e) {
      if (w.at === at) showMessage(`${WARNING_NAMES[name]} of ${at}: ${e.message}`);
    }
  }

  function warningLayers() {
    const out = [];
    const hot = warnings.hotspots.data;
    if (state.visible.hotspots && hot) {
      out.push(
        new deck.GeoJsonLayer({
          id: "hotspots",
          data: hot,
          filled: true,
          stroked: true,
          getFillColor: (f) => (f.properties.class === "hot" ? [200, 30, 30, 120] : [40, 90, 200, 90]),
          getLineColor: (f) => (f.properties.class === "hot" ? [150, 0, 0, 230] : [30, 60, 160, 200]),
          lineWidthMinPixels: 1,
          pickable: true,
        }),
      );
    }
    const alerts = warnings.alerts.data;
    if (state.visible.alerts && alerts) {
      out.push(
        new deck.GeoJsonLayer({
          id: "alerts",
          data: alerts,
          filled: true,
          stroked: true,
          getFillColor: [120, 0, 160, 40],
          getLineColor: [120, 0, 160, 255],
          lineWidthMinPixels: 3,
          pickable: true,
        }),
      );
    }
    return out;
  }

  // ---- tooltips: only the fields that have a value ------------------------------------------
  function tooltip(info) {
    const { object, layer, index } = info;
    if (!object || !layer) return null;
    const rule = state.rule;
    const p = Object.assign({}, object.properties || {});
    if (!TILED && layer.id.startsWith("communities")) {
      const day = cfg.data.days[state.at];
      const [zone, since] = day.info[String(index)] || [null, null];
      Object.assign(p, { rank: day.ranks[index], zone_id: zone, since });
    }
    const lines = [];
    const add = (name, value) => {
      if (value === null || value === undefined || value === "") return;
      lines.push(name ? `${name}: ${value}` : String(value));
    };
    if (layer.id.startsWith("communities")) {
      add("", p.name || p.id);
      add("level", p.label || labelOf(rule, p.rank || 0));
      add("since", p.since);
      add("expected lift", p.expected_lift);
      add("zone", p.zone_id);
      add("residents", number(p.population));
      add("district", p.district_id);
    } else if (layer.id.startsWith("zones") && p.zone_count !== undefined) {
      // zoomed out over a large city: the zones of a level come merged (one feature)
      add("", p.label || labelOf(rule, p.rank || 0));
      add("zones", number(p.zone_count));
      add("", "zoom in for each zone");
    } else if (layer.id.startsWith("zones")) {
      add("", p.label || labelOf(rule, p.rank || 0));
      add("zone", p.id);
      add("since", p.start);
      add("expected lift", p.expected_lift);
      add("communities", p.community_count);
      add("residents", number(p.population));
    } else if (layer.id === "hotspots") {
      add("", p.class === "hot" ? "hotspot (Gi*, cases of the last 14 days)" : "cold spot (Gi*)");
    } else if (layer.id === "alerts") {
      add("", "scan alert (space-time permutation scan)");
      add("around", p.center);
      add("window", p.start && p.end ? `${p.start} to ${p.end}` : null);
      add("communities", p.communities);
      add("p-value", p.p_value);
      add("recurrence interval (days)", p.recurrence_days);
    }
    return lines.length ? { text: lines.join("\n") } : null;
  }

  // ---- legend, rule picker, date slider -----------------------------------------------------
  function drawLegend() {
    const rule = state.rule;
    $("title").textContent = `riskmap: ${rule.name}`;
    document.title = `riskmap: ${rule.name}`;
    const list = $("levels");
    list.replaceChildren();
    for (const lv of [...rule.levels, rule.none]) {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = cssColor(lv.fill); // CSSOM: no inline style attribute
      swatch.dataset.level = lv.id;
      li.append(swatch, document.createTextNode(lv.label));
      list.append(li);
    }
    const note = document.createElement("li");
    note.className = "note";
    note.textContent = rule.exact
      ? "Zones are drawn as exact geometry; communities are outlined."
      : "Communities are filled with their level; zones are outlined.";
    if (COMMUNITIES_MIN_ZOOM > 0) {
      note.textContent += ` Zoomed out (below zoom ${COMMUNITIES_MIN_ZOOM}), the zones are filled and the communities not drawn.`;
    }
    list.append(note);
  }

  function drawRulePicker() {
    const select = $("rule");
    select.replaceChildren();
    for (const r of cfg.rules) {
      const opt = document.createElement("option");
      opt.value = r.id;
      opt.textContent = r.name;
      select.append(opt);
    }
    select.value = state.rule.id;
    select.disabled = cfg.rules.length < 2;
  }

  function drawSlider() {
    const rule = state.rule;
    const slider = $("date");
    slider.min = 0;
    slider.max = daysBetween(rule.first, rule.last);
    slider.value = daysBetween(rule.first, state.at);
    $("date-label").textContent = state.at;
    $("subtitle").textContent = `as of ${state.at}`;
  }

  function clampDate(at, rule) {
    return at < rule.first ? rule.first : at > rule.last ? rule.last : at;
  }

  function show(at) {
    state.at = clampDate(at, state.rule);
    drawSlider();
    const next = dayLayers(state.rule, state.at);
    if (state.current && next.key === state.current.key) return;
    // keep the last drawn layers until the new ones have loaded (no blank map meanwhile)
    if (state.current && document.body.dataset.ready === state.current.key) {
      state.previous = state.current;
    }
    delete document.body.dataset.ready;
    window.__riskmapReady = false;
    $("loading").hidden = false;
    state.current = next;
    redraw();
    if (TILED) {
      const url = new URL(location.href);
      url.searchParams.set("policy", state.rule.id);
      url.searchParams.set("at", state.at);
      history.replaceState(null, "", url);
    }
    loadPopulation();
    loadWarning("hotspots");
    loadWarning("alerts");
  }

  // ---- replay -------------------------------------------------------------------------------
  let playTimer = null;
  function setPlaying(on) {
    state.playing = on;
    $("play").textContent = on ? "\u23F8" : "\u25B6";
    $("play").setAttribute("aria-label", on ? "pause" : "play");
    clearTimeout(playTimer);
    if (on) step();
  }
  function step() {
    if (!state.playing) return;
    const ready = document.body.dataset.ready === state.current.key;
    if (ready) {
      if (state.at >= state.rule.last) {
        setPlaying(false);
        return;
      }
      if (TILED) prefetch(addDays(state.at, 1), PREFETCH_DAYS);
      show(addDays(state.at, 1));
    }
    playTimer = setTimeout(step, ready ? PLAY_STEP_MS : 100);
  }

  // ---- residents under each level: today and the trend --------------------------------------
  const TREND_DAYS = 14;
  let populationAsked = 0;
  async function loadPopulation() {
    const asked = ++populationAsked;
    let series; // {dates, levels: [{level, label, population: [...]}]}
    try {
      series = TILED ? await fetchPopulation() : embeddedPopulation();
    } catch (e) {
      if (asked === populationAsked) showMessage(`residents under each level: ${e.message}`);
      return;
    }
    if (asked === populationAsked) drawPopulation(series);
  }
  // daily over 14 days; weekly (3 dates) under rules drawn as exact geometry, whose residents
  // are estimated by area weighting (slower)
  function fetchPopulation() {
    const step = state.rule.exact ? 7 : 1;
    const q = `?policy=${encodeURIComponent(state.rule.id)}&at=${state.at}&step=${step}`;
    const days = Math.floor(Math.min(TREND_DAYS - 1, daysBetween(state.rule.first, state.at)) / step) + 1;
    return getJSON(`${cfg.api.population}${q}&days=${days}`);
  }
  function embeddedPopulation() {
    const dates = [];
    for (let i = TREND_DAYS - 1; i >= 0; i--) {
      const d = addDays(state.at, -i);
      if (cfg.data.days[d]) dates.push(d);
    }
    const levels = state.rule.levels.map((lv) => ({
      level: lv.id,
      label: lv.label,
      population: dates.map((d) => cfg.data.days[d].population[lv.id] || 0),
    }));
    return { dates, levels };
  }
  function sparkline(values) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 60 16");
    svg.setAttribute("width", "60");
    svg.setAttribute("height", "16");
    const max = Math.max(...values, 1);
    const pts = values.map((v, i) => {
      const x = values.length > 1 ? (i * 60) / (values.length - 1) : 30;
      return `${x.toFixed(1)},${(15 - (v / max) * 14).toFixed(1)}`;
    });
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#333");
    svg.append(line);
    return svg;
  }
  function drawPopulation(series) {
    const table = $("population").querySelector("table");
    table.replaceChildren();
    const rule = state.rule;
    const n = series.dates.length;
    const head = table.insertRow();
    const span = n > 1 ? daysBetween(series.dates[0], series.dates[n - 1]) : 0;
    for (const h of ["", "level", "today", `trend (${span} days)`]) {
      const th = document.createElement("th");
      th.textContent = h;
      head.append(th);
    }
    for (const s of series.levels) {
      const lv = rule.levels.find((l) => l.id === s.level);
      const row = table.insertRow();
      row.dataset.level = s.level;
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      if (lv) swatch.style.backgroundColor = cssColor(lv.fill);
      row.insertCell().append(swatch);
      row.insertCell().textContent = s.label;
      const today = s.population[n - 1] || 0;
      row.insertCell().textContent = number(today);
      const trend = row.insertCell();
      const before = s.population[0] || 0;
      const delta = today - before;
      trend.append(sparkline(s.population));
      const change = document.createElement("span");
      change.textContent =
        delta === 0 ? " =" : ` ${delta > 0 ? "\u25B2 +" : "\u25BC \u2212"}${number(Math.abs(delta))}`;
      trend.append(change);
    }
  }

  // ---- search: "lat, lon" or a community's name ---------------------------------------------
  const COORDS = /^\s*(-?\d+(?:\.\d+)?)\s*[,;\s]\s*(-?\d+(?:\.\d+)?)\s*$/;
  function statusText(s) {
    const lines = [s.label];
    if (s.community) {
      const c = s.community;
      lines.push(`community: ${c.name ? `${c.name} (${c.id})` : c.id}`);
    } else if (s.covered === false) {
      lines.push("outside every community riskmap has data for: no data here, not a safe place");
    }
    if (s.zone_id) lines.push(`zone: ${s.zone_id}`);
    if (s.since) lines.push(`since: ${s.since}`);
    if (s.expected_lift) lines.push(`expected lift: ${s.expected_lift}`);
    lines.push(`as of ${s.at}, rule ${s.policy}`);
    return lines.join("\n");
  }
  async function search(text) {
    const answer = $("answer");
    answer.textContent = "";
    const m = COORDS.exec(text);
    let lat, lon;
    if (m) {
      [lat, lon] = [Number(m[1]), Number(m[2])];
      if (Math.abs(lat) > 90 || Math.abs(lon) > 180) {
        answer.textContent = "expected latitude, longitude (e.g. 30.59, 114.30)";
        return;
      }
    } else {
      const found = await getJSON(`${cfg.api.search}?q=${encodeURIComponent(text)}&limit=5`);
      if (!found.matches.length) {
        answer.textContent = `no community matches \u201C${text}\u201D`;
        return;
      }
      ({ lat, lon } = found.matches[0]);
    }
    const q = `?lat=${lat}&lon=${lon}&policy=${encodeURIComponent(state.rule.id)}&at=${state.at}`;
    const s = await getJSON(`${cfg.api.status}${q}`);
    answer.textContent = statusText(s);
    answer.dataset.level = s.level;
    const view = map.props.initialViewState || {};
    map.setProps({
      initialViewState: { ...view, longitude: lon, latitude: lat, zoom: Math.max(view.zoom || 0, 13) },
    });
  }

  // ---- layer toggles ------------------------------------------------------------------------
  function drawToggles() {
    const names = [
      ["communities", "Communities"],
      ["zones", "Zones"],
      ["districts", "Districts and names"],
    ];
    if (cfg.basemap) names.unshift(["basemap", "Base map"]);
    if (TILED) names.push(["hotspots", "Hotspots (red) and cold spots"], ["alerts", "Scan alerts (purple)"]);
    for (const [name, label] of names) {
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = state.visible[name];
      box.id = `layer-${name}`;
      box.addEventListener("change", () => {
        state.visible[name] = box.checked;
        state.current = dayLayers(state.rule, state.at);
        redraw();
        if (name in warnings) loadWarning(name);
      });
      const lab = document.createElement("label");
      lab.append(box, document.createTextNode(label));
      $("layers").append(lab);
    }
  }

  // ---- district names -----------------------------------------------------------------------
  // the names of the districts at least as wide on screen as their name at the whole zoom
  // shown (a city's hundreds of names overlap when zoomed out; fewer glyphs draw faster)
  function shownLabels() {
    const z = state.labelZoom;
    const got = state.shownLabels;
    if (got && got.zoom === z && got.from === state.districtLabels) return got.data;
    const perDegree = (256 * 2 ** z) / 360;
    const data = state.districtLabels.filter((d) => d.width * perDegree >= d.name.length * 7);
    state.shownLabels = { zoom: z, from: state.districtLabels, data };
    return data;
  }
  // a label at the middle of each district's largest outline (its bounding box's centre)
  function labelsOf(features) {
    const out = [];
    for (const f of features) {
      const name = f.properties && (f.properties.name || f.properties.id);
      const g = f.geometry;
      if (!name || !g) continue;
      const polys = g.type === "Polygon" ? [g.coordinates] : g.type === "MultiPolygon" ? g.coordinates : [];
      let best = null;
      let bestArea = -1;
      for (const poly of polys) {
        const xs = poly[0].map((c) => c[0]);
        const ys = poly[0].map((c) => c[1]);
        const box = [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
        const area = (box[2] - box[0]) * (box[3] - box[1]);
        if (area > bestArea) [best, bestArea] = [box, area];
      }
      if (best) {
        const position = [(best[0] + best[2]) / 2, (best[1] + best[3]) / 2];
        out.push({ name: String(name), position, width: best[2] - best[0] });
      }
    }
    return out;
  }
  async function loadDistrictLabels() {
    try {
      const fc = TILED ? await getJSON(`${cfg.api.districts}`) : cfg.data.districts;
      state.districtLabels = labelsOf(fc.features || []);
      redraw();
    } catch (e) {
      showMessage(`district names: ${e.message}`);
    }
  }

  // ---- start --------------------------------------------------------------------------------
  const map = new deck.Deck({
    parent: $("deck-container"),
    initialViewState: { ...cfg.view, pitch: 0, bearing: 0 },
    controller: true,
    layers: [],
    getTooltip: tooltip,
    onAfterRender: afterRender,
    onViewStateChange: ({ viewState }) => {
      const coarse = viewState.zoom < COMMUNITIES_MIN_ZOOM;
      const labelZoom = Math.floor(viewState.zoom);
      if (TILED && state.current && coarse !== state.coarse) {
        state.coarse = coarse; // the zones' fill and outline follow (styleOf)
        state.labelZoom = labelZoom;
        state.current = dayLayers(state.rule, state.at);
        redraw();
      } else if (labelZoom !== state.labelZoom && state.current) {
        state.labelZoom = labelZoom; // the district names shown follow
        redraw();
      }
    },
    onError: (err) => showMessage(`the map could not draw: ${err.message || err}`),
  });
  window.riskmapDeck = map;

  drawRulePicker();
  drawLegend();
  drawToggles();
  if (!TILED) $("search").hidden = true; // an exported map has no server to ask
  $("rule").addEventListener("change", () => {
    state.rule = cfg.rules.find((r) => r.id === $("rule").value) || state.rule;
    clearMessage();
    drawLegend();
    show(state.at);
  });
  let slide = null;
  $("date").addEventListener("input", () => {
    const at = addDays(state.rule.first, Number($("date").value));
    $("date-label").textContent = at;
    clearTimeout(slide);
    slide = setTimeout(() => show(at), 120);
  });
  $("play").addEventListener("click", () => setPlaying(!state.playing));
  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearMessage();
    search($("q").value).catch((e) => {
      $("answer").textContent = "";
      showMessage(e.message);
    });
  });
  $("message").addEventListener("click", clearMessage);
  show(state.at);
  loadDistrictLabels();
})();
