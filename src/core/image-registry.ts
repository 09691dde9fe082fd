/**
 * Whether an image comes from one of a list of registry prefixes. One
 * judgment for every place that limits registries: a profile's image
 * overrides (overrides.ts) and the images of tenant profiles
 * (tenant-profile.ts, `tenantProfiles.allowedRegistries`).
 */

/** The characters an image reference is made of (an image override must be one; a registry prefix too). */
export const IMAGE_REFERENCE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/;

/**
 * A prefix matches at a path boundary, so "registry.example.com" does not admit
 * "registry.example.com.evil.io": the prefix ends in `/` or `:`, or the image
 * is the prefix, or the image goes on with `/`, `:` or `@`.
 */
export function imageAllowed(image: string, registries: readonly string[]): boolean {
  return registries.some((prefix) => {
    if (!image.startsWith(prefix)) return false;
    return prefix.endsWith('/') || prefix.endsWith(':') || image.length === prefix.length || '/:@'.includes(image[prefix.length] ?? '');
  });
}
