import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

// The page is built into web/dist, which the broker serves (-http). The bundle (~570 KB, 160 KB
// gzipped) is mostly libp2p with WebRTC, noise and yamux.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 1024 }
})
