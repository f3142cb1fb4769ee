"""GLSL for the ground-truth renderer.

Surfaces are textured procedurally in the fragment shader from world-anchored
uv coordinates, so patterns stay fixed to the world as the camera moves (a model
can only learn to remember what is stable) and no texture files are needed.
Depth is written as linear metres along the viewing axis into a float target.
"""

VERTEX = """
#version 330
uniform mat4 u_view;
uniform mat4 u_proj;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
in vec3 in_col1;
in vec3 in_col2;
in vec4 in_pat;
in vec3 in_light;
in vec3 in_lpos;
out vec3 v_world;
out vec3 v_normal;
out vec2 v_uv;
flat out vec3 v_col1;
flat out vec3 v_col2;
flat out vec4 v_pat;
flat out vec3 v_light;
flat out vec3 v_lpos;
out float v_depth;
void main() {
    vec4 view = u_view * vec4(in_pos, 1.0);
    v_depth = -view.z;
    v_world = in_pos;
    v_normal = in_normal;
    v_uv = in_uv;
    v_col1 = in_col1;
    v_col2 = in_col2;
    v_pat = in_pat;
    v_light = in_light;
    v_lpos = in_lpos;
    gl_Position = u_proj * view;
}
"""

FRAGMENT = """
#version 330
in vec3 v_world;
in vec3 v_normal;
in vec2 v_uv;
flat in vec3 v_col1;
flat in vec3 v_col2;
flat in vec4 v_pat;
flat in vec3 v_light;
flat in vec3 v_lpos;
in float v_depth;
layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_depth;

// Arithmetic hash (no sin): cheap on llvmpipe and exact for integer cell coordinates.
float hash(vec2 p) {
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}
float noise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash(i), hash(i + vec2(1, 0)), u.x), mix(hash(i + vec2(0, 1)), hash(i + vec2(1, 1)), u.x), u.y);
}
vec2 rot(vec2 p, float deg) { float a = radians(deg); return mat2(cos(a), sin(a), -sin(a), cos(a)) * p; }
// Antialiased steps: the edge is widened to the pixel footprint (fwidth), so a pattern edge
// changes colour smoothly instead of flipping a whole pixel on a rounding difference. Frames
// then do not depend on where in a batch a view is drawn, and alias less.
float aa_step(float edge, float x) { float w = max(fwidth(x), 1e-5); return smoothstep(edge - w, edge + w, x); }
float aa_line(float x, float width) {  // 1 on a thin line at integer x, 0 elsewhere
    float d = abs(fract(x + 0.5) - 0.5);
    float w = max(fwidth(x), 1e-5);
    return 1.0 - smoothstep(width - w, width + w, d);
}
float band(float x) {  // soft square wave
    float w = max(fwidth(x), 1e-5) + 0.02;
    float f = fract(x);
    return smoothstep(0.5 - w, 0.5 + w, f) * (1.0 - smoothstep(1.0 - w, 1.0, f)) + (1.0 - smoothstep(0.0, w, f)) * 0.0;
}

vec3 albedo() {
    int id = int(v_pat.x + 0.5);
    float f = v_pat.y, ang = v_pat.z, ex = v_pat.w;
    vec2 uv = v_uv;
    vec3 a = v_col1, b = v_col2;
    float grain = 0.92 + 0.08 * noise(uv * 6.0);
    if (id == 0) return a * grain;
    if (id == 1) {  // planks
        float row = floor(uv.y * f);
        float shade = 0.8 + 0.35 * hash(vec2(row, 3.0));
        float seam = max(aa_line(uv.y * f, 0.04), aa_line(uv.x * 0.35 + hash(vec2(row, 7.0)), 0.015));
        return mix(a * shade, b, seam) * (0.93 + 0.07 * noise(vec2(uv.x * 10.0, uv.y * 2.0)));
    }
    if (id == 2) {  // tiles
        vec2 g = uv * f;
        float chk = abs(aa_step(0.5, fract(g.x * 0.5)) - aa_step(0.5, fract(g.y * 0.5)));
        float grout = max(aa_line(g.x, 0.03), aa_line(g.y, 0.03));
        return mix(mix(a, b, chk), b * 0.7, grout) * grain;
    }
    if (id == 3) {  // stripes
        vec2 p = rot(uv, ang);
        return mix(a, b, aa_step(0.5, fract(p.x * f))) * grain;
    }
    if (id == 4) {  // brick
        float rowf = uv.y * f * 2.0;
        float row = floor(rowf);
        float x = uv.x * f + 0.5 * mod(row, 2.0);
        float mortar = max(aa_line(rowf, 0.05), aa_line(x, 0.03));
        return mix(a * (0.85 + 0.3 * hash(vec2(floor(x), row))), b * 0.6, mortar) * grain;
    }
    // Posters: uv spans [0, 1] across the picture; a dark frame around it.
    float edge = min(min(uv.x, uv.y), min(1.0 - uv.x, 1.0 - uv.y));
    vec3 pic;
    vec2 c = uv - 0.5;
    if (id == 5) pic = mix(a, b, aa_step(0.5, fract(length(c) * f * 1.5 + ex)));
    else if (id == 6) pic = mix(a, b, aa_step(0.5, fract(rot(c, ang).x * f * 1.5)));
    else if (id == 7) {
        vec2 g = fract(rot(c, ang) * f) - 0.5;
        pic = mix(a, b, 1.0 - aa_step(0.28, length(g)));
    }
    else if (id == 8) pic = mix(a, b, 1.0 - aa_step(0.3, length(c - vec2(0.15 * ex - 0.07, 0.0)))) * (0.85 + 0.15 * aa_step(0.0, c.y));
    else if (id == 9) {
        vec2 p = abs(rot(c, ang));
        pic = mix(a, b, (1.0 - aa_step(0.09, min(p.x, p.y))) * (1.0 - aa_step(0.38, max(p.x, p.y))));
    }
    else if (id == 10) {
        vec2 p = rot(c, ang);
        pic = mix(a, b, aa_step(-0.3, p.y) * (1.0 - aa_step(0.3, abs(p.x) * 1.7 + p.y)));
    }
    else {
        float k = floor(uv.y * (f * 0.5 + 2.0));
        pic = mix(a, b, mod(k, 2.0)) * (0.8 + 0.2 * hash(vec2(k, ex)));
    }
    return mix(vec3(0.08), pic, aa_step(0.05, edge));
}

void main() {
    vec3 n = normalize(v_normal);
    vec3 to_l = v_lpos - v_world;
    float d2 = dot(to_l, to_l);
    float diffuse = max(dot(n, to_l * inversesqrt(d2)), 0.0) / (1.0 + 0.03 * d2);
    float sky = 0.12 * dot(n, normalize(vec3(0.3, 0.8, 0.5)));
    vec3 lit = albedo() * v_light * (0.38 + sky + 0.85 * diffuse);
    f_color = vec4(clamp(lit, 0.0, 1.0), 1.0);
    f_depth = v_depth;
}
"""
